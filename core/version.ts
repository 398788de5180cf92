/** The package version, recorded in every run manifest and derived file. */
export const VERSION = '0.1.0';
