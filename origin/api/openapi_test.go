package api

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/liveingest/liveingest/origin/coord/memory"
	"github.com/liveingest/liveingest/origin/slots"
)

// openAPI is the part of the document the tests read.
type openAPI struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas         map[string]*schema `json:"schemas"`
		SecuritySchemes map[string]struct {
			Type   string `json:"type"`
			Scheme string `json:"scheme"`
		} `json:"securitySchemes"`
	} `json:"components"`
}

type schema struct {
	Ref        string             `json:"$ref"`
	Type       string             `json:"type"`
	Properties map[string]*schema `json:"properties"`
	Items      *schema            `json:"items"`
}

func loadDoc(t *testing.T) *openAPI {
	t.Helper()
	var d openAPI
	if err := json.Unmarshal(openAPIDoc, &d); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(d.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", d.OpenAPI)
	}
	return &d
}

// resolve follows a $ref to its component schema.
func (d *openAPI) resolve(t *testing.T, s *schema) *schema {
	t.Helper()
	for s != nil && s.Ref != "" {
		name, ok := strings.CutPrefix(s.Ref, "#/components/schemas/")
		if !ok || d.Components.Schemas[name] == nil {
			t.Fatalf("unresolvable $ref %q", s.Ref)
		}
		s = d.Components.Schemas[name]
	}
	return s
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// TestOpenAPIRoutes fails when a route is registered but not documented, or
// documented but not registered.
func TestOpenAPIRoutes(t *testing.T) {
	d := loadDoc(t)
	co := memory.New(nil)
	lim, err := co.NewLimiter(DefaultAuthFailRate)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{AdminToken: testToken}, Deps{Slots: &slots.Repo{}, Registry: co, AuthLimiter: lim})
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for _, rt := range a.routes {
		path := strings.TrimPrefix(rt.pattern, Prefix)
		key := strings.ToLower(rt.method) + " " + path
		registered[key] = true
		op, ok := d.Paths[path][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("route %s %s is not in openapi.json", rt.method, rt.pattern)
			continue
		}
		var o struct {
			Security  *[]any                     `json:"security"`
			Responses map[string]json.RawMessage `json:"responses"`
		}
		if err := json.Unmarshal(op, &o); err != nil {
			t.Fatal(err)
		}
		if rt.public != (o.Security != nil && len(*o.Security) == 0) {
			t.Errorf("%s %s: public=%v but the document's security says otherwise", rt.method, path, rt.public)
		}
		if !rt.public && (o.Responses["401"] == nil || o.Responses["429"] == nil) {
			t.Errorf("%s %s: 401 or 429 (failed-token limit) not documented", rt.method, path)
		}
	}
	for path, item := range d.Paths {
		for method := range item {
			if !slices.Contains(httpMethods, method) {
				continue // parameters, summary…
			}
			if !registered[method+" "+path] {
				t.Errorf("openapi.json documents %s %s, which is not registered", strings.ToUpper(method), path)
			}
		}
	}
	if s := d.Components.SecuritySchemes["bearer"]; s.Type != "http" || s.Scheme != "bearer" {
		t.Errorf("bearer security scheme: %+v", s)
	}
}

// TestOpenAPIFields fails when a JSON field of a request or response type is
// missing from its schema, or a schema has a property the type lacks.
func TestOpenAPIFields(t *testing.T) {
	d := loadDoc(t)
	for name, v := range map[string]any{
		"Slot":         slots.View{},
		"SlotInput":    slots.Input{},
		"SlotList":     SlotList{},
		"CloneRequest": CloneRequest{},
		"Live":         Live{},
		"Error":        Error{},
	} {
		s := d.Components.Schemas[name]
		if s == nil {
			t.Errorf("schema %s missing", name)
			continue
		}
		compare(t, d, name, reflect.TypeOf(v), s)
	}
}

// compare walks typ's JSON fields (recursively through pointers, slices and
// structs) against s.
func compare(t *testing.T, d *openAPI, at string, typ reflect.Type, s *schema) {
	t.Helper()
	s = d.resolve(t, s)
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch {
	case typ == reflect.TypeOf(time.Time{}):
		if s.Type != "string" {
			t.Errorf("%s: time is %q in the document, want string", at, s.Type)
		}
	case typ.Kind() == reflect.Slice:
		if s.Type != "array" || s.Items == nil {
			t.Errorf("%s: want an array schema", at)
			return
		}
		compare(t, d, at+"[]", typ.Elem(), s.Items)
	case typ.Kind() == reflect.Struct:
		fields := jsonFields(typ)
		for name, ft := range fields {
			p, ok := s.Properties[name]
			if !ok {
				t.Errorf("%s.%s is not documented", at, name)
				continue
			}
			compare(t, d, at+"."+name, ft, p)
		}
		for name := range s.Properties {
			if _, ok := fields[name]; !ok {
				t.Errorf("%s.%s is documented but %s has no such field", at, name, typ)
			}
		}
	}
}

// jsonFields maps the JSON names of typ's exported fields to their types.
func jsonFields(typ reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range typ.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
