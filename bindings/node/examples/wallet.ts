/**
 * The wallet ledger: deposits, payments and withdrawals folded into a balance, with commands
 * that refuse to overdraw. Runs embedded (`wallet.db`) or against a server:
 *
 * ```sh
 * node build/examples/wallet.js                         # embedded
 * node build/examples/wallet.js http://127.0.0.1:7420   # a running `flipbook serve`
 * ```
 *
 * @module
 */
import { randomUUID } from "node:crypto";
import { Client, type Decision, type Reducer } from "../src/index.js";

interface Wallet {
  readonly balance: number;
  readonly payments: number;
}

const ledger: Reducer<Wallet> = {
  revision: "wallet-1",
  initial: () => ({ balance: 0, payments: 0 }),
  apply(wallet, event) {
    const { amount } = event.json<{ amount: number }>();
    switch (event.name) {
      case "Deposited":
        return { ...wallet, balance: wallet.balance + amount };
      case "PaymentMade":
        return { balance: wallet.balance - amount, payments: wallet.payments + 1 };
      case "Withdrawn":
        return { ...wallet, balance: wallet.balance - amount };
      default:
        throw new Error(`unknown event ${event.name}`);
    }
  },
};

class InsufficientFunds extends Error {}

const spend =
  (name: string, amount: number) =>
  (wallet: Wallet): Decision => {
    if (wallet.balance < amount) throw new InsufficientFunds(`balance ${wallet.balance}, needs ${amount}`);
    return { name, data: { amount } };
  };

const url = process.argv[2];
await using client = url ? await Client.connect(url) : await Client.openEmbedded("wallet.db");
const walletId = `wallet-${randomUUID()}`;
await client.execute(walletId, ledger, () => ({ name: "Deposited", data: { amount: 100 } }));
await client.execute(walletId, ledger, spend("PaymentMade", 30));
await client.execute(walletId, ledger, spend("Withdrawn", 50));
try {
  await client.execute(walletId, ledger, spend("Withdrawn", 50));
} catch (error) {
  if (!(error instanceof InsufficientFunds)) throw error;
  console.log(`refused: ${error.message}`);
}
const { state, version } = await client.load(walletId, ledger);
console.log(`${walletId}: balance ${state.balance}, ${state.payments} payment(s), version ${version}`);
