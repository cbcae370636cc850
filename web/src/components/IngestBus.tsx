import { useQuery } from "@tanstack/react-query";
import { ApiError, get, type Schemas } from "../api/client";
import { int } from "../format";

type Bus = Schemas["BusDto"];
export type PartitionLag = { partition: number; end: number; committed: number; lag: number };
export type DeadLetter = { offset: number; at_ms: number | null; from: string; reason: string; tenant: string | null; bytes: number };

/** What the operator reads first: how far behind the workers are, and where. */
export function lagSummary(parts: PartitionLag[]): string {
  if (parts.length === 0) return "no partitions read yet";
  const total = parts.reduce((n, p) => n + p.lag, 0);
  if (total === 0) return `caught up on all ${parts.length} partitions`;
  const worst = parts.reduce((a, b) => (b.lag > a.lag ? b : a));
  return `${int(total)} batches behind in all; the most on partition ${worst.partition} (${int(worst.lag)})`;
}

/** The ingest bus, for operators (anyone else is refused by the API, and sees nothing here). */
export function IngestBus() {
  const q = useQuery({
    queryKey: ["ops-bus"],
    queryFn: () => get<Bus>("/v1/ops/bus"),
    refetchInterval: 5_000,
    retry: false,
  });
  if (q.isError && q.error instanceof ApiError && q.error.status === 403) return null;
  if (!q.data) return null;
  const b = q.data;
  const parts = b.partitions as unknown as PartitionLag[];
  const letters = b.dead_letters as unknown as DeadLetter[];
  return (
    <section className="panel" aria-label="Ingest bus">
      <h2>
        Ingest bus: {b.bus === "kafka" ? "Kafka" : "in-process"}{" "}
        {b.ready ? <span className="badge ok">ready</span> : <span className="badge critical">not ready</span>}
      </h2>
      {b.reason && <p role="alert">{b.reason}</p>}
      {b.bus === "memory" ? (
        <p>Batches go from the API to the pipeline inside this process, acknowledged once stored. Replicas that scale out use <code>--bus kafka://host:port</code>.</p>
      ) : (
        <>
          <p>{lagSummary(parts)}. Ingest for a partition further behind than <code>--bus-max-lag</code> is answered 429.</p>
          <div>
            <table>
              <thead><tr><th>Partition</th><th>End</th><th>Workers at</th><th>Behind (batches)</th></tr></thead>
              <tbody>
                {parts.map((p) => (
                  <tr key={p.partition}><td>{p.partition}</td><td>{int(p.end)}</td><td>{int(p.committed)}</td><td>{int(p.lag)}</td></tr>
                ))}
              </tbody>
            </table>
          </div>
          <h3>Dead letters</h3>
          {b.dead_letters_error && <p role="alert">They could not be read: {b.dead_letters_error}</p>}
          {letters.length === 0 ? (
            <p className="muted">None: every message was read.</p>
          ) : (
            <>
              <p className="muted">Messages the workers could not read; <code>hub dlq replay</code> publishes them again once the cause is fixed.</p>
              <div>
                <table>
                  <thead><tr><th>When</th><th>From</th><th>Tenant</th><th>Reason</th></tr></thead>
                  <tbody>
                    {letters.map((d) => (
                      <tr key={d.offset}>
                        <td>{d.at_ms ? new Date(d.at_ms).toLocaleString() : "–"}</td>
                        <td className="mono">{d.from}</td>
                        <td>{d.tenant ?? "–"}</td>
                        <td>{d.reason}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </>
          )}
        </>
      )}
    </section>
  );
}
