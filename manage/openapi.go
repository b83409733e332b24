package manage

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

type obj = map[string]any

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// openAPI serves the document built from the route table.
func (c *call) openAPI() (any, error) { return rawBody(c.a.spec), nil }

// buildOpenAPI returns the OpenAPI 3.1 document of the route table.
func buildOpenAPI(routes []Route) ([]byte, error) {
	paths := obj{}
	errResp := obj{"$ref": "#/components/responses/Error"}
	for _, rt := range routes {
		op := obj{"operationId": rt.OperationID, "summary": rt.Summary, "tags": []string{rt.Tag}}
		if rt.Action != "" {
			op["x-parley-action"] = rt.Action
		}
		switch rt.Auth {
		case AuthNone:
			op["security"] = []obj{}
		default:
			op["security"] = []obj{{"bearer": []string{}}, {"cookie": []string{}}}
		}
		var params []obj
		for _, m := range pathParam.FindAllStringSubmatch(rt.Pattern, -1) {
			params = append(params, obj{"name": m[1], "in": "path", "required": true, "schema": obj{"type": "string"}})
		}
		if rt.list {
			params = append(params,
				obj{"name": "after", "in": "query", "description": "the next_cursor of the previous page", "schema": obj{"type": "string"}},
				obj{"name": "limit", "in": "query", "description": "page size (default 20, larger values are lowered to the maximum, 100 by default)",
					"schema": obj{"type": "integer", "minimum": 1}})
		}
		for _, q := range rt.query {
			schema := obj{"type": "string"}
			if q.format != "" {
				schema["format"] = q.format
			}
			params = append(params, obj{"name": q.name, "in": "query", "description": q.desc, "required": q.required, "schema": schema})
		}
		if rt.Idempotent {
			params = append(params, obj{"name": "Idempotency-Key", "in": "header", "description": "replays the stored response of a repeated request (24 h)",
				"schema": obj{"type": "string", "maxLength": 255}})
		}
		if rt.Auth != AuthNone && rt.Method != http.MethodGet {
			params = append(params, obj{"name": CSRFHeader, "in": "header", "description": `"1": required with the session cookie unless Origin is this host`,
				"schema": obj{"type": "string", "enum": []string{"1"}}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.request != nil {
			op["requestBody"] = obj{"required": true, "content": obj{"application/json": obj{"schema": schemaOf(reflect.TypeOf(rt.request))}}}
		}
		ok := obj{"description": http.StatusText(rt.Status), "content": obj{"application/json": obj{"schema": schemaOf(reflect.TypeOf(rt.response))}}}
		if rt.download {
			ok["headers"] = obj{"Content-Disposition": obj{"description": `attachment; filename="…json"`, "schema": obj{"type": "string"}}}
			ok["description"] = "the document, streamed: a connection that breaks before its end is an export that failed"
		}
		op["responses"] = obj{strconv.Itoa(rt.Status): ok, "429": errResp, "default": errResp}
		item, _ := paths[rt.Pattern].(obj)
		if item == nil {
			item = obj{}
			paths[rt.Pattern] = item
		}
		item[strings.ToLower(rt.Method)] = op
	}
	doc := obj{
		"openapi": "3.1.0",
		"info": obj{"title": "Parley management API", "version": "1",
			"description": "Tenants, people, keys and limits. Errors have one shape: {\"error\":{\"type\",\"code\",\"message\",\"param\"}}."},
		"paths": paths,
		"components": obj{
			"securitySchemes": obj{
				"bearer": obj{"type": "http", "scheme": "bearer",
					"description": "a sign-in session token (ps_…) or a secret key (sk_…) with scope management or read_only"},
				"cookie": obj{"type": "apiKey", "in": "cookie", "name": SessionCookie,
					"description": "the sign-in session cookie; unsafe methods also need " + CSRFHeader + ": 1"},
			},
			"schemas": obj{"Error": schemaOf(reflect.TypeOf(errorBody{}))},
			"responses": obj{"Error": obj{"description": "an error",
				"headers": obj{"Retry-After": obj{"description": "seconds to wait (429, 503)", "schema": obj{"type": "integer"}}},
				"content": obj{"application/json": obj{"schema": obj{"$ref": "#/components/schemas/Error"}}}}},
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}

var (
	timeType = reflect.TypeOf(time.Time{})
	rawType  = reflect.TypeOf(json.RawMessage{})
)

// schemaOf is the JSON Schema of a Go type as encoding/json writes it: a
// struct is an object whose fields without omitempty are required.
func schemaOf(t reflect.Type) obj {
	switch {
	case t == timeType:
		return obj{"type": "string", "format": "date-time"}
	case t == rawType:
		return obj{"type": "object"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		s := schemaOf(t.Elem())
		if ty, ok := s["type"].(string); ok {
			s["type"] = []string{ty, "null"}
		}
		return s
	case reflect.String:
		return obj{"type": "string"}
	case reflect.Bool:
		return obj{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return obj{"type": "integer"}
	case reflect.Float64, reflect.Float32:
		return obj{"type": "number"}
	case reflect.Slice, reflect.Array:
		return obj{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map, reflect.Interface:
		return obj{"type": "object"}
	case reflect.Struct:
		props, required := obj{}, []string{}
		addFields(t, props, &required)
		s := obj{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			s["required"] = required
		}
		return s
	}
	return obj{}
}

func addFields(t reflect.Type, props obj, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		if f.Anonymous && tag == "" {
			addFields(f.Type, props, required)
			continue
		}
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		props[name] = schemaOf(f.Type)
		if !strings.Contains(opts, "omitempty") {
			*required = append(*required, name)
		}
	}
}
