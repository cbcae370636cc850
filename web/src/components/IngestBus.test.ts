import { describe, expect, it } from "vitest";
import { lagSummary } from "./IngestBus";

describe("the ingest bus's lag", () => {
  it("says when the workers are caught up", () => {
    expect(lagSummary([{ partition: 0, end: 10, committed: 10, lag: 0 }, { partition: 1, end: 3, committed: 3, lag: 0 }])).toBe(
      "caught up on all 2 partitions",
    );
  });
  it("names the partition furthest behind", () => {
    expect(lagSummary([{ partition: 0, end: 10, committed: 9, lag: 1 }, { partition: 3, end: 2500, committed: 100, lag: 2400 }])).toBe(
      "2,401 batches behind in all; the most on partition 3 (2,400)",
    );
  });
  it("before the first reading", () => {
    expect(lagSummary([])).toBe("no partitions read yet");
  });
});
