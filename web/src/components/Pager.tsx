import { useState } from "react";

/** Cursor paging newest first: the cursors of the pages walked so far, and the current one. */
export function useCursors() {
  const [cursors, setCursors] = useState<string[]>([]);
  return {
    cursor: cursors[cursors.length - 1] as string | undefined,
    /** Back to the first page (filters changed). */
    reset: () => setCursors([]),
    pager: (next: string | null | undefined) => (
      <div className="row">
        <button className="secondary" disabled={cursors.length === 0} onClick={() => setCursors(cursors.slice(0, -1))}>Newer</button>
        <button className="secondary" disabled={!next} onClick={() => next && setCursors([...cursors, next])}>Older</button>
      </div>
    ),
  };
}
