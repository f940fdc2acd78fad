//! The wallet ledger from Flipbook's own description: deposits, payments and withdrawals folded
//! into a balance, with commands that refuse to overdraw.
//!
//! ```sh
//! cargo run -p flipbook-sdk-core --example wallet                        # embedded, ./wallet.db
//! cargo run -p flipbook-sdk-core --example wallet -- http://127.0.0.1:7420  # a running server
//! ```

use flipbook_sdk_core::{BoxError, Client, ClientOptions, ProposedEvent, RecordedEvent, Reducer, Repository};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
struct Wallet {
    balance: i64,
    payments: u32,
}

#[derive(Serialize, Deserialize)]
struct Amount {
    amount: i64,
}

enum Command {
    Deposit(i64),
    Pay(i64),
    Withdraw(i64),
}

struct Ledger;

impl Reducer for Ledger {
    type State = Wallet;
    const REVISION: &'static str = "wallet-1";

    fn initial(&self) -> Wallet {
        Wallet::default()
    }

    fn apply(&self, wallet: &mut Wallet, event: &RecordedEvent) -> Result<(), BoxError> {
        let Amount { amount } = serde_json::from_slice(&event.payload)?;
        match event.name.as_str() {
            "Deposited" => wallet.balance += amount,
            "PaymentMade" => {
                wallet.balance -= amount;
                wallet.payments += 1;
            }
            "Withdrawn" => wallet.balance -= amount,
            other => return Err(format!("unknown event {other}").into()),
        }
        Ok(())
    }
}

/// The business rule: a decision, from the state, to events (or a refusal).
fn decide(wallet: &Wallet, command: &Command) -> Result<Vec<ProposedEvent>, BoxError> {
    let (name, amount) = match *command {
        Command::Deposit(amount) => ("Deposited", amount),
        Command::Pay(amount) => ("PaymentMade", amount),
        Command::Withdraw(amount) => ("Withdrawn", amount),
    };
    if amount <= 0 {
        return Err("amounts are positive".into());
    }
    if name != "Deposited" && wallet.balance < amount {
        return Err(format!("insufficient funds: balance {}, needs {amount}", wallet.balance).into());
    }
    Ok(vec![ProposedEvent::new(name, serde_json::to_vec(&Amount { amount })?)])
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let options = ClientOptions::default();
    let client = match std::env::args().nth(1) {
        Some(endpoint) => Client::connect_with(flipbook_sdk_core::ConnectOptions::new(endpoint), options).await?,
        None => Client::open_embedded("wallet.db", options).await?,
    };
    let wallets = Repository::new(client, Ledger);
    let id = format!("wallet-{}", uuid::Uuid::new_v4());

    for command in [Command::Deposit(100), Command::Pay(30), Command::Withdraw(50), Command::Withdraw(50)] {
        match wallets.execute(&id, |wallet| decide(wallet, &command)).await {
            Ok(done) => println!("version {}: balance {}", done.version, done.state.balance),
            Err(error) => println!("refused: {error}"),
        }
    }
    let wallet = wallets.load(&id).await?;
    println!(
        "{id}: balance {} after {} payment(s), version {}",
        wallet.state.balance, wallet.state.payments, wallet.version
    );
    Ok(())
}
