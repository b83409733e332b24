// Package widgetbuild bundles the website widget's TypeScript sources
// (web/widget/src) into the one file parleyd serves, with esbuild's Go API:
// the same bytes on every machine, with no Node.js needed to build. The
// TypeScript types are checked separately (web's TestWidgetTypes, tsc).
package widgetbuild

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/evanw/esbuild/pkg/api"
)

// Version is the widget's version, as window.Parley.version reports it.
const Version = "1.0.0"

// Build bundles srcDir/index.ts and returns the minified script.
func Build(srcDir string) ([]byte, error) {
	res := api.Build(api.BuildOptions{
		EntryPoints:       []string{filepath.Join(srcDir, "index.ts")},
		Bundle:            true,
		Write:             false,
		Format:            api.FormatIIFE,
		Target:            api.ES2020,
		Platform:          api.PlatformBrowser,
		MinifyWhitespace:  true,
		MinifyIdentifiers: true,
		MinifySyntax:      true,
		Charset:           api.CharsetUTF8,
		LegalComments:     api.LegalCommentsNone,
		Define:            map[string]string{"VERSION": fmt.Sprintf("%q", Version)},
		Banner: map[string]string{"js": "/* Parley widget " + Version +
			": built from web/widget/src by `go generate ./web`; do not edit. */"},
		LogLevel: api.LogLevelSilent,
	})
	if len(res.Errors) > 0 {
		var msgs []string
		for _, m := range res.Errors {
			loc := ""
			if m.Location != nil {
				loc = fmt.Sprintf("%s:%d:%d: ", m.Location.File, m.Location.Line, m.Location.Column)
			}
			msgs = append(msgs, loc+m.Text)
		}
		return nil, errors.New("building the widget: " + strings.Join(msgs, "; "))
	}
	if len(res.OutputFiles) != 1 {
		return nil, fmt.Errorf("building the widget: esbuild wrote %d files, want 1", len(res.OutputFiles))
	}
	return res.OutputFiles[0].Contents, nil
}

// BuildTest bundles a test file of the widget (web/widget/test) for node:
// an ES module that imports node:test.
func BuildTest(path string) ([]byte, error) {
	res := api.Build(api.BuildOptions{
		EntryPoints: []string{path},
		Bundle:      true,
		Write:       false,
		Format:      api.FormatESModule,
		Target:      api.ES2020,
		Platform:    api.PlatformNode,
		External:    []string{"node:*"},
		Define:      map[string]string{"VERSION": fmt.Sprintf("%q", Version)},
		LogLevel:    api.LogLevelSilent,
	})
	if len(res.Errors) > 0 {
		return nil, fmt.Errorf("building %s: %s", path, res.Errors[0].Text)
	}
	return res.OutputFiles[0].Contents, nil
}
