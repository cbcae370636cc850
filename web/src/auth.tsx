import { useQuery } from "@tanstack/react-query";
import { get, type Schemas } from "./api/client";

export type Me = Schemas["MeDto"];

const ORDER = ["viewer", "analyst", "admin", "owner"];

/** Whether `me` holds at least `role` in the tenant it acts in. */
export function atLeast(me: Me | undefined, role: "viewer" | "analyst" | "admin" | "owner"): boolean {
  if (!me) return false;
  if (me.kind !== "user") return role === "viewer" || me.scopes.includes("admin");
  return ORDER.indexOf(me.role ?? "") >= ORDER.indexOf(role);
}

export function useMe() {
  return useQuery({ queryKey: ["me"], queryFn: () => get<Me>("/v1/auth/me"), staleTime: 60_000 });
}
