import { describe, expect, it } from "vitest";
import { int, ms, pct, unpricedNote, usd } from "./format";
import { atLeast, type Me } from "./auth";

describe("formatting", () => {
  it("shows units", () => {
    expect(int(1234567)).toBe("1,234,567");
    expect(usd(0.0126)).toBe("$0.0126");
    expect(usd(1234.5)).toBe("$1,234.50");
    expect(ms(812.5)).toBe("813 ms");
    expect(ms(2.25)).toBe("2.3 ms");
    expect(pct(0.25)).toBe("25.0%");
    expect(int(null)).toBe("–");
  });
});

describe("roles", () => {
  const me = (role: string | null, kind = "user", scopes: string[] = []) => ({ kind, role, scopes }) as unknown as Me;
  it("orders viewer < analyst < admin < owner", () => {
    expect(atLeast(me("viewer"), "admin")).toBe(false);
    expect(atLeast(me("admin"), "analyst")).toBe(true);
    expect(atLeast(me("owner"), "admin")).toBe(true);
    expect(atLeast(undefined, "viewer")).toBe(false);
    expect(atLeast(me(null, "api_key", ["admin"]), "admin")).toBe(true);
  });
});

describe("unpricedNote", () => {
  it("says nothing when every call is priced", () => {
    expect(unpricedNote(0, 0)).toBeUndefined();
  });
  it("counts calls and tokens, singular and plural", () => {
    expect(unpricedNote(1, 75)).toBe("+ 1 unpriced call (75 tokens): no price for their model");
    expect(unpricedNote(1200, 1_500_000)).toBe("+ 1,200 unpriced calls (1,500,000 tokens): no price for their model");
  });
});
