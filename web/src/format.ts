export const int = (n: number | null | undefined) => (n == null ? "–" : Math.round(n).toLocaleString("en-US"));
export const usd = (n: number | null | undefined) =>
  n == null ? "–" : "$" + n.toLocaleString("en-US", { minimumFractionDigits: n < 1 ? 4 : 2, maximumFractionDigits: n < 1 ? 4 : 2 });
export const ms = (n: number | null | undefined) => (n == null ? "–" : n < 10 ? n.toFixed(1) + " ms" : Math.round(n).toLocaleString("en-US") + " ms");
export const pct = (n: number | null | undefined) => (n == null ? "–" : (n * 100).toFixed(n < 0.01 ? 2 : 1) + "%");
export const when = (iso: string) => new Date(iso).toLocaleString();

/** Says that a cost leaves calls out: those whose model has no price count nothing, not $0. */
export function unpricedNote(events: number, tokens: number): string | undefined {
  if (!events) return undefined;
  return `+ ${int(events)} unpriced call${events === 1 ? "" : "s"} (${int(tokens)} tokens): no price for their model`;
}
