/**
 * The skeleton every provider sandbox shares (`ProviderSandbox`, sandbox/provider.ts), so that a
 * provider module states only what is its own: the fields of a new account and what it shows,
 * the truth of a dataset, the rendering of its webhooks, and its token and API endpoints. The
 * account lookups, the control API's account creation, the dataset behind `data.truth` and the
 * OAuth providers' authorize endpoint are written once, here.
 */
import type { AccountBook, BaseAccount } from "../accounts.ts";
import type { Change, Dataset, StreamName, TruthRecord } from "../data.ts";
import type {
  AccountInput,
  AccountSnapshot,
  ApiEndpoint,
  CreatedAccount,
  ProviderName,
  ProviderSandbox,
  SandboxWorld,
  TokenEndpoint,
} from "../provider.ts";
import type { WebhookBuildOptions, WebhookMessage } from "../webhooks.ts";
import { json } from "../http.ts";
import { approveAuthorize, type AuthorizationCodes } from "./oauth_codes.ts";

/** A change to render as a webhook, with the account it belongs to. */
export interface Delivery<A> {
  readonly account: A;
  readonly change: Change;
}

/** The OAuth authorize endpoint, played by a person who approves at once (oauth_codes.ts). */
export interface AuthorizeSpec<A> {
  readonly pathname: string;
  readonly clientId: string;
  readonly codes: AuthorizationCodes;
  /**
   * Query parameters the provider declines a request without (Lightspeed's `scope`): a 400 naming
   * the first one missing, before anyone signs in.
   */
  readonly requiredParams?: readonly string[];
  /** What the provider adds to the redirect besides `code` and `state`. */
  params(
    account: A,
    base: Record<string, string>,
    now: number,
  ): Record<string, string> | Promise<Record<string, string>>;
}

export interface SandboxProviderSpec<A extends BaseAccount> {
  readonly name: ProviderName;
  readonly world: SandboxWorld;
  readonly book: AccountBook<A>;
  /** undefined for a provider without a token endpoint (a static API key). */
  readonly token: TokenEndpoint | undefined;
  invalidGrant(): Response;
  unauthorized(): Response;
  /** Served before `api`, for the providers that have OAuth. */
  readonly authorize?: AuthorizeSpec<A>;
  readonly api: readonly ApiEndpoint[];
  readonly streams: readonly StreamName[];
  /** Shopify only; false when left out. */
  readonly customersCanBeDeleted?: boolean;
  /** QuickBooks only; false when left out. */
  readonly ordersCanBeDeleted?: boolean;
  /** ShipHero only; false when left out. */
  readonly customOrderStatuses?: boolean;
  /** Every record of the dataset's stream, as the adapter must store it. */
  truth(set: Dataset, stream: StreamName): TruthRecord[];
  /** A new account's own fields; its external id and `revoked: false` are added here. */
  open(externalId: string, now: number, input: AccountInput): Omit<A, keyof BaseAccount>;
  /** What the control API answers for a new account, in the provider's own field names. */
  created(account: A): Omit<CreatedAccount, "external_id">;
  inspect(account: A): AccountSnapshot;
  /** The deliveries for these changes (of known accounts); see `perChange`. */
  webhooks(deliveries: Delivery<A>[], opts: WebhookBuildOptions): Promise<WebhookMessage[]>;
}

export function defineSandboxProvider<A extends BaseAccount>(
  spec: SandboxProviderSpec<A>,
): ProviderSandbox {
  const { name, world, book } = spec;

  const self: ProviderSandbox = {
    name,
    token: spec.token,
    accounts: book,
    invalidGrant: spec.invalidGrant,
    unauthorized: spec.unauthorized,
    api: spec.authorize ? [authorizeEndpoint(spec.authorize), ...spec.api] : spec.api,

    data: {
      streams: spec.streams,
      customersCanBeDeleted: spec.customersCanBeDeleted ?? false,
      ordersCanBeDeleted: spec.ordersCanBeDeleted ?? false,
      customOrderStatuses: spec.customOrderStatuses ?? false,
      truth: (externalId, stream) => spec.truth(world.data.get(name, externalId), stream),
    },

    webhooks: {
      build(items, opts) {
        const deliveries = items.flatMap(({ account, change }) => {
          const found = book.get(account);
          return found ? [{ account: found, change }] : [];
        });
        return spec.webhooks(deliveries, opts);
      },
    },

    createAccount(input, now) {
      const externalId = book.claimId(input.externalId);
      if (externalId === undefined) return undefined;
      // `open` returns exactly A's own fields; the spread cannot show TypeScript that the whole is an A.
      const fields = { ...spec.open(externalId, now, input), externalId, revoked: false };
      const account = book.add(fields as A);
      return { external_id: externalId, ...spec.created(account) };
    },

    inspect(externalId) {
      const account = book.get(externalId);
      return account && spec.inspect(account);
    },
  };

  function authorizeEndpoint(authorize: AuthorizeSpec<A>): ApiEndpoint {
    return {
      method: "GET",
      pattern: new URLPattern({ pathname: authorize.pathname }),
      handle(req, _params, now) {
        const query = new URL(req.url).searchParams;
        const missing = authorize.requiredParams?.find((name) => !query.get(name)?.trim());
        if (missing !== undefined) {
          return json({
            error: "invalid_request",
            error_description: `The ${missing} parameter is required.`,
          }, 400);
        }
        return approveAuthorize(req, now, {
          clientId: authorize.clientId,
          codes: authorize.codes,
          // The named account, or a new one, as a person connecting a fresh store would make.
          account: (id) => book.get(id ?? self.createAccount({}, now)!.external_id),
          params: (account, base) => authorize.params(account, base, now),
        });
      },
    };
  }

  return self;
}

/** Webhooks that are one delivery per change; `render` answers undefined for a change it skips. */
export function perChange<A>(
  render: (
    delivery: Delivery<A>,
    opts: WebhookBuildOptions,
  ) => WebhookMessage | undefined | Promise<WebhookMessage | undefined>,
): (deliveries: Delivery<A>[], opts: WebhookBuildOptions) => Promise<WebhookMessage[]> {
  return async (deliveries, opts) => {
    const out: WebhookMessage[] = [];
    for (const delivery of deliveries) {
      const message = await render(delivery, opts);
      if (message) out.push(message);
    }
    return out;
  };
}
