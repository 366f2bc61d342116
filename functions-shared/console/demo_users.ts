// The local stack's demo users of the web console (its local sign-in, never on a deployed
// project): fixed ids, so `npm start` can give the demo connections an owner.
export const DEMO_USERS = {
  demo: { id: "0d000000-0000-4000-8000-00000000d001", email: "demo@tether.local" },
  other: { id: "0d000000-0000-4000-8000-00000000d002", email: "other@tether.local" },
} as const;
