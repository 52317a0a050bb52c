package main

import (
	"bytes"
	"strings"
	"testing"
	"testing/fstest"
)

// A WindowsApp as the checks below read it: generation 3, three replicas.
const object = `apiVersion: winapp.dev/v1alpha1
kind: WindowsApp
metadata:
  name: web
  generation: 3
spec:
  replicas: 3
status:
  observedGeneration: 3
`

// check is a GROUP/KIND directory with one test case expecting Healthy with message "3".
func check(script string) fstest.MapFS {
	return fstest.MapFS{
		"g.example/K/health.lua": {Data: []byte(script)},
		"g.example/K/health_test.yaml": {Data: []byte(`tests:
  - healthStatus:
      status: Healthy
      message: "3"
    inputPath: testdata/web.yaml
`)},
		"g.example/K/testdata/web.yaml": {Data: []byte(object)},
	}
}

func runTests(t *testing.T, fsys fstest.MapFS) (int, string) {
	t.Helper()
	var out bytes.Buffer
	failures, err := RunTests(fsys, "root", &out)
	if err != nil {
		t.Fatalf("RunTests: %v\n%s", err, out.String())
	}
	return failures, out.String()
}

const ret = "\nreturn {status = \"Healthy\", message = tostring(obj.spec.replicas)}\n"

// The control: Lua 5.1 code that passes, so that each failure below is the snippet's doing.
func TestLua51Passes(t *testing.T) {
	script := "local n = 0\nfor _, v in ipairs({1, 2}) do n = n + v end\nlocal a, b = unpack({1, 2})\nlocal c = select('#', a, b) % 2" + ret
	if failures, out := runTests(t, check(script)); failures != 0 || !strings.Contains(out, "PASS 1 check(s), 1 case(s)") {
		t.Fatalf("want a pass, got %d failure(s):\n%s", failures, out)
	}
}

// Code that Lua 5.4 (what the tests ran before) accepts and Argo CD's gopher-lua does not: the
// test command must fail on each, in the environment named.
func TestLua54OnlyCodeFails(t *testing.T) {
	for _, tc := range []struct {
		name, snippet, want string
	}{
		{"integer division", "local half = obj.spec.replicas // 2", "does not compile as Lua 5.1"},
		{"bitwise operators", "local mask = 1 << 2", "does not compile as Lua 5.1"},
		{"utf8 library", "local s = utf8.char(72)", "the script failed"},
		{"table.unpack", "local a, b = table.unpack({1, 2})", "the script failed"},
		{"table.pack", "local t = table.pack(1, 2)", "the script failed"},
		{"math.tointeger", "local n = math.tointeger(obj.spec.replicas)", "the script failed"},
		{"math.type", "local kind = math.type(obj.spec.replicas)", "the script failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			failures, out := runTests(t, check(tc.snippet+ret))
			if failures == 0 || !strings.Contains(out, tc.want) {
				t.Fatalf("want a failure mentioning %q, got %d failure(s):\n%s", tc.want, failures, out)
			}
			for _, env := range []string{"[argocd-cm]", "[built-in (open libs)]"} {
				if !strings.Contains(out, env) {
					t.Errorf("no failure reported for %s:\n%s", env, out)
				}
			}
		})
	}
}

// Lua 5.4 has integers and prints a float division as 3.0; gopher-lua has only float64 numbers and
// prints whole ones without a fraction. A message written against Lua 5.4's output fails.
func TestIntegerFloatDistinctionFails(t *testing.T) {
	fsys := check("return {status = \"Healthy\", message = tostring(obj.spec.replicas / 1)}\n")
	fsys["g.example/K/health_test.yaml"].Data = bytes.Replace(fsys["g.example/K/health_test.yaml"].Data, []byte(`"3"`), []byte(`"3.0"`), 1)
	failures, out := runTests(t, fsys)
	if failures == 0 || !strings.Contains(out, `message: want "3.0"`) || !strings.Contains(out, `got  "3"`) {
		t.Fatalf("want a message diff 3.0 vs 3, got %d failure(s):\n%s", failures, out)
	}
}

// Argo CD opens no string, math or os library for argocd-cm scripts; built-in ones get them all.
func TestLibrariesByEnvironment(t *testing.T) {
	probe := `return {status = "Healthy", message = table.concat({
  type(string), type(math), type(os), type(io), type(require("os").time), type(table.insert), type(unpack)}, " ")}`
	obj, err := decodeObject([]byte(object))
	if err != nil {
		t.Fatal(err)
	}
	for env, want := range map[Env]string{
		ArgoCDCM: "nil nil nil nil function function function",
		BuiltIn:  "table table table table function function function",
	} {
		h, err := Eval(probe, "probe.lua", obj, env)
		if err != nil || h.Message != want {
			t.Errorf("%s: want %q, got %q (%v)", env, want, h.Message, err)
		}
	}
	if _, err := Eval(`local s = ("x"):upper()`+ret, "probe.lua", obj, ArgoCDCM); err == nil {
		t.Error("string methods work without the string library")
	}
}

func TestEvalRejectsWhatArgoCDCannotShow(t *testing.T) {
	obj, _ := decodeObject([]byte(object))
	for script, want := range map[string]string{
		`return {status = "Fine"}`:                 "invalid health status",
		`return {status = "Healthy", message = 3}`: "not a string",
		`return {}`:         "empty table",
		`local x = 1`:       "returned nothing",
		`return "Healthy"`:  "expect table output",
		`while true do end`: "deadline",
	} {
		if _, err := Eval(script, "x.lua", obj, ArgoCDCM); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want an error with %q, got %v", script, want, err)
		}
	}
}

func TestReportsWrongExpectationsAndUnusedTestdata(t *testing.T) {
	fsys := check(`return {status = "Progressing", message = "3"}`)
	fsys["g.example/K/testdata/forgotten.yaml"] = &fstest.MapFile{Data: []byte(object)}
	failures, out := runTests(t, fsys)
	for _, want := range []string{"status:  want Healthy", "got  Progressing", "testdata/forgotten.yaml is not the inputPath"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if failures != 2 {
		t.Errorf("want 2 failures, got %d:\n%s", failures, out)
	}
}

func TestCheckCM(t *testing.T) {
	script := "local hs = {}\nhs.status = \"Healthy\"\nreturn hs\n"
	cm := func(body string) []byte {
		return []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\ndata:\n  resource.customizations.health.g.example_K: |\n" + body)
	}
	key := CMKey("x/resource_customizations/g.example/K/health.lua")
	if key != "resource.customizations.health.g.example_K" {
		t.Fatalf("CMKey: %s", key)
	}
	if err := CheckCM([]byte(script), cm("    local hs = {}\n    hs.status = \"Healthy\"\n    return hs\n"), key); err != nil {
		t.Errorf("equal: %v", err)
	}
	err := CheckCM([]byte(script), cm("    local hs = {}\n    hs.status = \"Degraded\"\n    return hs\n"), key)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("differing: want an error at line 2, got %v", err)
	}
	if err := CheckCM([]byte(script), cm("    local hs = {}\n"), "resource.customizations.health.other_K"); err == nil {
		t.Error("missing key: no error")
	}
	if err := CheckCM([]byte("local x = 1 // 2\n"), cm("    local x = 1 // 2\n"), key); err == nil {
		t.Error("a script gopher-lua cannot compile passed")
	}
}
