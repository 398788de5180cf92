/** Prometheus text metrics: counts, sizes and durations only (no ids, no names, nothing from a request). */
import type { JobStatus } from './store.ts';

export class Metrics {
  readonly #requests = new Map<string, number>();
  readonly #jobsEnded = new Map<string, number>();
  #jobSeconds = 0;
  #jobCount = 0;
  #uploadBytes = 0;
  #crashes = 0;

  request(operation: string, status: number): void {
    const k = `${operation}|${status}`;
    this.#requests.set(k, (this.#requests.get(k) ?? 0) + 1);
  }

  jobEnded(status: JobStatus, ms: number): void {
    this.#jobsEnded.set(status, (this.#jobsEnded.get(status) ?? 0) + 1);
    this.#jobSeconds += ms / 1000;
    this.#jobCount++;
  }

  uploaded(bytes: number): void {
    this.#uploadBytes += bytes;
  }

  workerCrashed(): void {
    this.#crashes++;
  }

  render(gauges: { jobs: Record<JobStatus, number> }): string {
    const lines: string[] = [];
    lines.push('# HELP gatedvision_http_requests_total HTTP requests by operation and status.', '# TYPE gatedvision_http_requests_total counter');
    for (const [k, n] of [...this.#requests].sort()) {
      const [op, status] = k.split('|');
      lines.push(`gatedvision_http_requests_total{operation="${op}",status="${status}"} ${n}`);
    }
    lines.push('# HELP gatedvision_jobs Jobs in the store by status.', '# TYPE gatedvision_jobs gauge');
    for (const [s, n] of Object.entries(gauges.jobs)) lines.push(`gatedvision_jobs{status="${s}"} ${n}`);
    lines.push('# HELP gatedvision_jobs_ended_total Jobs ended by this process, by final status.', '# TYPE gatedvision_jobs_ended_total counter');
    for (const [s, n] of [...this.#jobsEnded].sort()) lines.push(`gatedvision_jobs_ended_total{status="${s}"} ${n}`);
    lines.push('# HELP gatedvision_job_seconds Wall time of ended jobs.', '# TYPE gatedvision_job_seconds summary');
    lines.push(`gatedvision_job_seconds_sum ${this.#jobSeconds.toFixed(3)}`, `gatedvision_job_seconds_count ${this.#jobCount}`);
    lines.push('# HELP gatedvision_upload_bytes_total Bytes accepted in uploads.', '# TYPE gatedvision_upload_bytes_total counter', `gatedvision_upload_bytes_total ${this.#uploadBytes}`);
    lines.push('# HELP gatedvision_worker_crashes_total Workers that died under a job.', '# TYPE gatedvision_worker_crashes_total counter', `gatedvision_worker_crashes_total ${this.#crashes}`);
    lines.push('# HELP process_resident_memory_bytes Resident memory of the server process.', '# TYPE process_resident_memory_bytes gauge', `process_resident_memory_bytes ${process.memoryUsage.rss()}`);
    return `${lines.join('\n')}\n`;
  }
}
