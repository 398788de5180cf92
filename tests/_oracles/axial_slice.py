"""One axial slice of a synthetic series as pydicom writes it (explicit VR little endian), for the io tests' oracles."""
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def axial_slice(series, z, pixels, spacing, modality='CT', study='1.2.3', bits_stored=16, signed=1, intercept=None,
                sop_class='1.2.840.10008.5.1.4.1.1.2'):
    """A slice at height z (mm) of `pixels` (rows x cols, 16-bit little endian); a rescale only when intercept is given."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b'\0' * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study, series, modality
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0.0, 0.0, z]
    ds.PixelSpacing = [spacing, spacing]
    rows, cols = pixels.shape
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, cols, 1, 'MONOCHROME2'
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, signed
    if intercept is not None:
        ds.RescaleSlope, ds.RescaleIntercept = 1, intercept
    ds.PixelData = pixels.tobytes()
    return ds
