// promql-check: parses PromQL expressions with Prometheus's own parser, at the version
// go.mod pins. Input: one JSON string (an expression) per line on stdin. Output: one line
// per expression, "ok" or "error: <the parser's message>"; exit status 1 if any failed.
// The chart's tests feed it every alert rule and dashboard query (tests/unit/helm).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	p := parser.NewParser(parser.Options{})
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	failed := false
	for in.Scan() {
		var expr string
		if err := json.Unmarshal(in.Bytes(), &expr); err != nil {
			fmt.Fprintf(os.Stderr, "not a JSON string: %v\n", err)
			os.Exit(2)
		}
		if _, err := p.ParseExpr(expr); err != nil {
			fmt.Printf("error: %v\n", err)
			failed = true
		} else {
			fmt.Println("ok")
		}
	}
	if failed {
		os.Exit(1)
	}
}
