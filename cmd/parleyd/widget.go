package main

import (
	"net/http"

	"parley/config"
	"parley/gateway"
	"parley/storage"
	"parley/web"
)

// mountWidget serves the website widget and, in development, the demo page
// with its token endpoint (widget.enabled, widget.demo).
func mountWidget(gw *gateway.Server, cfg *config.Config) {
	if cfg.Widget.Enabled {
		gw.Handle("GET /widget.js", http.HandlerFunc(web.Widget))
	}
	if cfg.Widget.Demo {
		agent := firstAgent(*cfg)
		gw.Handle("GET /demo", web.Demo(agent, "/demo/token"))
		gw.Handle("POST /demo/token", gw.DemoTokens(storage.DefaultTenant, agent))
	}
}
