// Command gen rebuilds web/widget.js from web/widget/src (run by
// `go generate ./web`, from the web directory).
package main

import (
	"fmt"
	"os"

	"parley/web/internal/widgetbuild"
)

func main() {
	js, err := widgetbuild.Build("widget/src")
	if err == nil {
		err = os.WriteFile("widget.js", js, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	fmt.Printf("web/widget.js: %d bytes\n", len(js))
}
