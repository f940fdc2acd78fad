// A program of a Go user of Flipbook, built by scripts/release-test.sh from the released module
// as `go get` fetches it: it appends, executes a command and loads, in memory.
package main

import (
	"context"
	"fmt"
	"os"

	flipbook "github.com/flipbook-es/flipbook/bindings/go"
)

type counter struct{ N int }

var counters = flipbook.Reducer[counter]{
	Revision: "counter-v1",
	Apply:    func(c counter, _ flipbook.Event) (counter, error) { c.N++; return c, nil },
}

func main() {
	ctx := context.Background()
	client, err := flipbook.InMemory()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer client.Close()
	if _, err := client.Append(ctx, flipbook.Append{StateID: "c-1", Events: []flipbook.EventData{{Name: "Counted"}}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	executed, err := flipbook.Execute(ctx, client, "c-1", counters, func(counter) ([]flipbook.EventData, error) {
		return []flipbook.EventData{{Name: "Counted"}}, nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	loaded, err := flipbook.Load(ctx, client, "c-1", counters)
	fmt.Println("counted", executed.Version, loaded.State.N, err)
}
