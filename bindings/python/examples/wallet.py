"""The wallet ledger: deposits, payments and withdrawals folded into a balance, with commands
that refuse to overdraw. Runs embedded (``wallet.db``) or against a server::

    python examples/wallet.py                         # embedded
    python examples/wallet.py http://127.0.0.1:7420   # a running `flipbook serve`
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from typing import Any

import flipbook


@dataclass
class Wallet:
    balance: int = 0
    payments: int = 0


class Ledger(flipbook.Reducer[Wallet]):
    revision = "wallet-1"

    def initial(self) -> Wallet:
        return Wallet()

    def apply(self, wallet: Wallet, event: flipbook.RecordedEvent) -> Wallet:
        amount = int(event.json()["amount"])  # type: ignore[index]
        if event.name == "Deposited":
            return Wallet(wallet.balance + amount, wallet.payments)
        if event.name == "PaymentMade":
            return Wallet(wallet.balance - amount, wallet.payments + 1)
        if event.name == "Withdrawn":
            return Wallet(wallet.balance - amount, wallet.payments)
        raise ValueError(f"unknown event {event.name}")

    def encode(self, wallet: Wallet) -> bytes:
        return super().encode({"balance": wallet.balance, "payments": wallet.payments})  # type: ignore[arg-type]

    def decode(self, data: bytes) -> Wallet:
        fields: Any = super().decode(data)
        return Wallet(**fields)


class InsufficientFunds(Exception):
    pass


def spend(name: str, amount: int) -> Any:
    def decide(wallet: Wallet) -> list[flipbook.Event]:
        if wallet.balance < amount:
            raise InsufficientFunds(f"balance {wallet.balance}, needs {amount}")
        return [flipbook.Event(name, {"amount": amount})]

    return decide


def main() -> None:
    if len(sys.argv) > 1:
        client = flipbook.Client.connect(sys.argv[1])
    else:
        client = flipbook.Client.open_embedded("wallet.db")
    ledger = Ledger()
    wallet_id = f"wallet-{uuid.uuid4()}"
    client.execute(wallet_id, ledger, lambda _: [flipbook.Event("Deposited", {"amount": 100})])
    client.execute(wallet_id, ledger, spend("PaymentMade", 30))
    client.execute(wallet_id, ledger, spend("Withdrawn", 50))
    try:
        client.execute(wallet_id, ledger, spend("Withdrawn", 50))
    except InsufficientFunds as refused:
        print(f"refused: {refused}")
    loaded = client.load(wallet_id, ledger)
    print(f"{wallet_id}: balance {loaded.state.balance}, {loaded.state.payments} payment(s), version {loaded.version}")


if __name__ == "__main__":
    main()
