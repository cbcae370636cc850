import { useQuery } from "@tanstack/react-query";
import { get, type Schemas } from "../api/client";
import { ErrorNote, Loading } from "./States";
import { usd } from "../format";

type Daily = Schemas["DailyCostsDto"];

/** Each of the last seven days' cost as the hub counts it beside what CostOps billed for it. */
export function DailyCosts() {
  const daily = useQuery({ queryKey: ["costs-daily"], queryFn: () => get<Daily>("/v1/costs/daily"), refetchInterval: 60_000 });
  if (daily.isPending) return <Loading what="daily costs" />;
  if (daily.isError) return <ErrorNote error={daily.error} retry={() => daily.refetch()} />;
  const billed = daily.data.days.some((d) => d.billed_usd != null);
  return (
    <section className="panel" aria-label="Cost per day">
      <h2>Cost per day: counted and billed</h2>
      {!billed && (
        <p className="muted small" data-testid="no-billing">
          No billing brought in for these days. Install the <code>costops</code> integration to see what was billed beside what the hub counts.
        </p>
      )}
      <table>
        <thead>
          <tr>
            <th>Day (UTC)</th><th title="Reported costs, else the cost plugins' estimates">Counted</th><th>Estimated</th><th>Reported</th>
            <th title="The billing lines CostOps closed for the day">Billed</th><th title="Billed minus counted">Difference</th>
          </tr>
        </thead>
        <tbody>
          {[...daily.data.days].reverse().map((d) => (
            <tr key={d.date} data-testid={`day-${d.date}`}>
              <td>{d.date}</td><td>{usd(d.counted_usd)}</td><td>{usd(d.estimated_usd)}</td><td>{usd(d.reported_usd)}</td>
              <td>{d.billed_usd == null ? "–" : usd(d.billed_usd)}</td>
              <td>{d.difference_usd == null ? "–" : (d.difference_usd >= 0 ? "+" : "") + usd(d.difference_usd)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
