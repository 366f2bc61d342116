// Pushes a stock level to Lightspeed Retail (X-Series) with a fresh token from Tether: "PUT
// /api/2.1/products/{id}" with the count at one outlet
// (x-series-api.lightspeedhq.com/docs/inventory_updates).
import type { TetherClient } from "../mod.ts";

export interface StockLevel {
  connectionId: string;
  productId: string;
  outletId: string;
  /** The new count on hand (a total, not a change). */
  amount: number;
}

export async function pushStockLevel(tether: TetherClient, stock: StockLevel): Promise<void> {
  // Valid for a while yet: Tether refreshed it first if it was about to expire.
  const { access_token, config } = await tether.getAccessToken(stock.connectionId);
  const res = await fetch(
    `${config.api_base_url}/api/2.1/products/${encodeURIComponent(stock.productId)}`,
    {
      method: "PUT",
      headers: { authorization: `Bearer ${access_token}`, "content-type": "application/json" },
      body: JSON.stringify({
        details: { inventory: [{ outlet_id: stock.outletId, current_amount: stock.amount }] },
      }),
    },
  );
  if (!res.ok) throw new Error(`Lightspeed refused the stock level: HTTP ${res.status}`);
  await res.body?.cancel();
}
