//go:build cgo

package flipbook_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	flipbook "github.com/flipbook-es/flipbook/bindings/go"
)

// The README's wallet: a reducer, commands that decide from the folded state, a load.
type Wallet struct {
	Balance int `json:"balance"`
}

type Deposited struct {
	Amount int `json:"amount"`
}

var Wallets = flipbook.Reducer[Wallet]{
	Revision: "wallet-v1",
	Apply: func(w Wallet, e flipbook.Event) (Wallet, error) {
		var d Deposited
		err := e.Decode(&d)
		w.Balance += d.Amount
		return w, err
	},
}

var ErrInsufficientFunds = errors.New("insufficient funds")

func Withdraw(amount int) func(Wallet) ([]flipbook.EventData, error) {
	return func(w Wallet) ([]flipbook.EventData, error) {
		if w.Balance < amount {
			return nil, ErrInsufficientFunds
		}
		return []flipbook.EventData{{Name: "Deposited", Data: Deposited{-amount}}}, nil
	}
}

func ExampleExecute() {
	ctx := context.Background()
	client, err := flipbook.InMemory() // or flipbook.Connect(ctx, "http://127.0.0.1:7420")
	if err != nil {
		panic(err)
	}
	defer client.Close()

	deposit := func(Wallet) ([]flipbook.EventData, error) {
		return []flipbook.EventData{{Name: "Deposited", Data: Deposited{100}}}, nil
	}
	if _, err := flipbook.Execute(ctx, client, "wallet-1", Wallets, deposit); err != nil {
		panic(err)
	}
	executed, err := flipbook.Execute(ctx, client, "wallet-1", Wallets, Withdraw(30))
	fmt.Println(executed.State.Balance, executed.Version, err)
	_, err = flipbook.Execute(ctx, client, "wallet-1", Wallets, Withdraw(500))
	fmt.Println(err == ErrInsufficientFunds)
	// Output:
	// 70 2 <nil>
	// true
}

func ExampleLoad() {
	ctx := context.Background()
	client, _ := flipbook.InMemory()
	defer client.Close()
	_, _ = client.Append(ctx, flipbook.Append{StateID: "wallet-2", Events: []flipbook.EventData{
		{Name: "Deposited", Data: Deposited{5}}, {Name: "Deposited", Data: Deposited{7}},
	}})
	loaded, err := flipbook.Load(ctx, client, "wallet-2", Wallets)
	fmt.Println(loaded.State.Balance, loaded.Version, err)
	// Output: 12 2 <nil>
}

func ExampleClient_Append() {
	ctx := context.Background()
	client, _ := flipbook.InMemory()
	defer client.Close()
	appended, _ := client.Append(ctx, flipbook.Append{
		StateID:  "order-1",
		Events:   []flipbook.EventData{{Name: "Placed", Data: map[string]int{"items": 3}}},
		Expected: flipbook.ExpectNoState,
	})
	fmt.Println(appended.LastVersion)
	_, err := client.Append(ctx, flipbook.Append{
		StateID:  "order-1",
		Events:   []flipbook.EventData{{Name: "Placed"}},
		Expected: flipbook.ExpectNoState,
	})
	var conflict *flipbook.Error
	if errors.As(err, &conflict) && errors.Is(err, flipbook.ErrVersionConflict) {
		fmt.Println("conflict: the state is at version", conflict.ActualVersion)
	}
	// Output:
	// 1
	// conflict: the state is at version 1
}

func ExampleClient_ReadState() {
	ctx := context.Background()
	client, _ := flipbook.InMemory()
	defer client.Close()
	_, _ = client.Append(ctx, flipbook.Append{StateID: "log-1", Events: []flipbook.EventData{{Name: "A"}, {Name: "B"}}})
	for event, err := range client.ReadState(ctx, flipbook.StateQuery{StateID: "log-1"}) {
		if err != nil {
			panic(err)
		}
		fmt.Println(event.Version, event.Name)
	}
	// Output:
	// 1 A
	// 2 B
}

func ExampleClient_Subscribe() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, _ := flipbook.InMemory()
	defer client.Close()
	_, _ = client.Append(ctx, flipbook.Append{StateID: "cart-1", Events: []flipbook.EventData{{Name: "Added"}}})
	subscription := client.Subscribe(ctx, flipbook.SubscriptionQuery{StateIDPrefix: "cart-"})
	for event, err := range subscription.Events() {
		if err != nil {
			panic(err)
		}
		fmt.Println(event.StateID, event.Name, subscription.Position() == event.GlobalPosition)
		break // a real subscriber goes on: live events follow the stored ones
	}
	// Output: cart-1 Added true
}

func ExampleExecuteStates() {
	ctx := context.Background()
	client, _ := flipbook.InMemory()
	defer client.Close()
	_, _ = client.Append(ctx, flipbook.Append{StateID: "wallet-a", Events: []flipbook.EventData{{Name: "Deposited", Data: Deposited{50}}}})
	targets := []flipbook.Target[Wallet]{{StateID: "wallet-a", Reducer: Wallets}, {StateID: "wallet-b", Reducer: Wallets}}
	// A transfer: both events are stored in one atomic append, or neither is.
	transfer := func(w []Wallet) ([][]flipbook.EventData, error) {
		if w[0].Balance < 20 {
			return nil, ErrInsufficientFunds
		}
		return [][]flipbook.EventData{
			{{Name: "Deposited", Data: Deposited{-20}}},
			{{Name: "Deposited", Data: Deposited{20}}},
		}, nil
	}
	executed, err := flipbook.ExecuteStates(ctx, client, targets, transfer)
	fmt.Println(executed[0].State.Balance, executed[1].State.Balance, err)
	// Output: 30 20 <nil>
}

func ExampleOpenEmbedded() {
	dir, _ := os.MkdirTemp("", "flipbook-example-")
	defer os.RemoveAll(dir)
	client, err := flipbook.OpenEmbedded(filepath.Join(dir, "flipbook.db")) // no server: an SQLite file
	if err != nil {
		panic(err)
	}
	defer client.Close()
	appended, err := client.Append(context.Background(), flipbook.Append{StateID: "note-1", Events: []flipbook.EventData{{Name: "Written"}}})
	fmt.Println(appended.LastVersion, err)
	// Output: 1 <nil>
}

// Connect needs a running server (`flipbook serve`): this example is compiled, not run.
func ExampleConnect() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := flipbook.Connect(ctx, "https://flipbook.internal:7420",
		flipbook.WithToken(os.Getenv("FLIPBOOK_TOKEN")),
		flipbook.WithRetries(20, 5),
	)
	if err != nil {
		panic(err)
	}
	defer client.Close()
	info, err := client.ServerInfo(ctx)
	fmt.Println(info.EventBackend, err)
}
