package main

import (
	"bytes"
	"errors"
	"testing"
)

// TestOutputModes checks the shared printers in the three output modes:
// -o json, -n and the default for a person.
func TestOutputModes(t *testing.T) {
	type obj struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	o := &obj{ID: "id-1", Name: "web-1"}
	for _, tc := range []struct {
		name, output string
		plain        bool
		print        func(a *app) error
		want         string
	}{
		{"show json", "json", false, func(a *app) error { return a.show(o, []string{"id-1", "web-1"}, []string{"ID", "id-1"}, nil) },
			"{\n  \"id\": \"id-1\",\n  \"name\": \"web-1\"\n}\n"},
		{"show plain", "", true, func(a *app) error { return a.show(o, []string{"id-1", "web-1"}, []string{"ID", "id-1"}, nil) },
			"id-1\tweb-1\n"},
		{"show fields and more", "", false, func(a *app) error {
			return a.show(o, nil, []string{"ID", "id-1", "Name", "web-1"}, func() error { a.line("more"); return nil })
		}, "ID:    id-1\nName:  web-1\nmore\n"},
		{"list json", "json", false, func(a *app) error {
			return printList(a, []obj{*o}, []string{"ID"}, func(o obj) []string { return []string{o.ID} })
		}, "[\n  {\n    \"id\": \"id-1\",\n    \"name\": \"web-1\"\n  }\n]\n"},
		{"list table", "", false, func(a *app) error {
			return printList(a, []obj{*o}, []string{"ID", "NAME"}, func(o obj) []string { return []string{o.ID, o.Name} })
		}, "ID    NAME\nid-1  web-1\n"},
		{"outcome json", "json", false, func(a *app) error {
			return a.outcome("Deleted VM web-1", "id-1", func() (any, error) { return o, nil })
		}, "{\n  \"id\": \"id-1\",\n  \"name\": \"web-1\"\n}\n"},
		{"outcome plain", "", true, func(a *app) error {
			return a.outcome("Deleted VM web-1", "id-1", func() (any, error) { return nil, errors.New("not read") })
		}, "id-1\n"},
		{"outcome sentence", "", false, func(a *app) error {
			return a.outcome("Deleted VM web-1", "id-1", func() (any, error) { return nil, errors.New("not read") })
		}, "Deleted VM web-1, ID: id-1\n"},
		{"say plain", "", true, func(a *app) error { a.say("Logged out"); return nil }, ""},
		{"say json", "json", false, func(a *app) error { a.say("Logged out"); return nil }, ""},
		{"say person", "", false, func(a *app) error { a.say("Logged %s", "out"); return nil }, "Logged out\n"},
	} {
		var out bytes.Buffer
		a := &app{stdout: &out, output: tc.output, nonInteractive: tc.plain}
		if err := tc.print(a); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if out.String() != tc.want {
			t.Errorf("%s: printed %q, want %q", tc.name, out.String(), tc.want)
		}
	}
}
