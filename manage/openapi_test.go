package manage

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestOpenAPIMatchesRoutes: every registered route is in the document
// with its operationId and summary, every operation of the document is a
// registered route, and every route of the table is served by the
// handler (it reaches the route's pipeline, not route_not_found).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/v1/openapi.json", "", nil)
	e.want(r, 200, "")
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			SecuritySchemes map[string]any `json:"securitySchemes"`
			Schemas         map[string]struct {
				Required []string `json:"required"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal([]byte(r.raw), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || doc.Components.SecuritySchemes["bearer"] == nil || doc.Components.SecuritySchemes["cookie"] == nil {
		t.Fatalf("document header: %s %v", doc.OpenAPI, doc.Components.SecuritySchemes)
	}
	if req := doc.Components.Schemas["Error"].Required; len(req) != 1 || req[0] != "error" {
		t.Fatalf("Error schema: %v", req)
	}
	routes := e.api.Routes()
	seen := map[string]bool{}
	ids := map[string]bool{}
	for _, rt := range routes {
		key := rt.Method + " " + rt.Pattern
		if seen[key] {
			t.Fatalf("route %s twice", key)
		}
		seen[key] = true
		if ids[rt.OperationID] {
			t.Fatalf("operationId %s twice", rt.OperationID)
		}
		ids[rt.OperationID] = true
		op := doc.Paths[rt.Pattern][strings.ToLower(rt.Method)]
		if op == nil {
			t.Errorf("%s is not in the document", key)
			continue
		}
		if op["operationId"] != rt.OperationID || op["summary"] != rt.Summary || rt.Summary == "" {
			t.Errorf("%s: operationId %v summary %v", key, op["operationId"], op["summary"])
		}
		if rt.request != nil {
			schema := op["requestBody"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
			if schema["type"] != "object" {
				t.Errorf("%s: request schema %v", key, schema)
			}
		}
		if _, ok := op["responses"].(map[string]any)["default"]; !ok {
			t.Errorf("%s: no error response", key)
		}
		// The handler serves it.
		path := fill(rt.Pattern, map[string]string{"tenant_id": "ten_x", "user_id": "u", "agent_id": "a", "key_id": "k", "invitation_id": "i"})
		got := e.do(rt.Method, path, "", nil)
		if got.errCode() == "route_not_found" || got.errCode() == "method_not_allowed" {
			t.Errorf("%s is not served: %s", key, got.raw)
		}
	}
	n := 0
	for p, methods := range doc.Paths {
		for m := range methods {
			n++
			if !seen[strings.ToUpper(m)+" "+p] {
				t.Errorf("the document has %s %s, which is not a route", m, p)
			}
		}
	}
	if n != len(routes) {
		t.Fatalf("document has %d operations, table %d routes", n, len(routes))
	}
	// Required fields come from the Go types: registerRequest needs all four.
	op := doc.Paths["/v1/auth/register"]["post"]
	schema := op["requestBody"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["schema"].(map[string]any)
	req, _ := schema["required"].([]any)
	if len(req) != 4 {
		t.Fatalf("register required %v", req)
	}
}
