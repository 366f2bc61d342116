// npm run stack:up | stack:down — the local stack in the background.
import { stackDown, stackUp } from "./local/stack.ts";
import { StackError } from "./local/util.ts";

const [command] = Deno.args;
try {
  if (command === "up") {
    const { info } = await stackUp();
    console.log("\nThe local stack is up:");
    for (const [key, value] of Object.entries(info)) {
      if (key === "SERVICE_KEY" || key === "TOKEN_ENCRYPTION_KEYS") continue;
      console.log(`  ${key.padEnd(26)} ${value}`);
    }
    console.log("  (keys are in .tether/stack.env)\n\nStop it with: npm run stack:down");
  } else if (command === "down") {
    await stackDown();
    console.log("The local stack is stopped.");
  } else {
    console.error("usage: npm run stack:up | npm run stack:down");
    Deno.exit(2);
  }
} catch (err) {
  if (!(err instanceof StackError)) throw err;
  console.error(`stack ${command}: ${err.message}`);
  Deno.exit(1);
}
