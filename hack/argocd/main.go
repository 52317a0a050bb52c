// argocd-health runs Argo CD resource health checks (health.lua) the way Argo CD does: in
// gopher-lua, a Lua 5.1 implementation, with the libraries Argo CD opens, the object as the
// global `obj`, and the returned table read as {status, message}.
//
//	argocd-health run HEALTH.lua < object.json|yaml
//	    prints STATUS<TAB>MESSAGE. Exit 0; 1 when the script fails or returns something Argo CD
//	    would not show as a health status; 2 on bad input or usage.
//	argocd-health test DIR
//	    runs every case of every health_test.yaml under DIR (a resource_customizations tree, or
//	    one GROUP/KIND directory) against the health.lua beside it, in both environments below,
//	    and prints a diff for each mismatch. Exit 0 when all pass, 1 otherwise, 2 on usage.
//	argocd-health check-cm HEALTH.lua ARGOCD-CM.yaml
//	    checks that the ConfigMap inlines HEALTH.lua byte for byte under
//	    resource.customizations.health.GROUP_KIND (GROUP and KIND are HEALTH.lua's two parent
//	    directories, as in Argo CD's resource_customizations/GROUP/KIND/health.lua).
//
// Environments (Argo CD's util/lua runLua):
//   - argocd-cm: a script from the argocd-cm ConfigMap without resource.customizations.useOpenLibs.
//     gopher-lua starts with no libraries (SkipOpenLibs); Argo CD then opens package, base and
//     table, and registers its "safe os" (time and date) under the table library's name, which
//     gopher-lua ignores because table is already loaded: so there is no os, string, math, io,
//     debug or coroutine global, and require("os") returns the safe os from package.preload.
//   - built-in: a script bundled in Argo CD's resource_customizations (or useOpenLibs: true).
//     Every gopher-lua library is open, then the same four steps run (package is re-opened, which
//     empties package.loaded, so require("os") returns the safe os while the os global is the full one).
//
// Both run under a one-second deadline, as Argo CD's do. `run` uses argocd-cm, the environment
// of config/argocd/argocd-cm-patch.yaml; `-open-libs` selects built-in.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

// Env is the library set a health script runs with.
type Env int

const (
	// ArgoCDCM is a script from argocd-cm (libraries not opened).
	ArgoCDCM Env = iota
	// BuiltIn is a script bundled in Argo CD (every library opened).
	BuiltIn
)

func (e Env) String() string {
	if e == BuiltIn {
		return "built-in (open libs)"
	}
	return "argocd-cm"
}

// The statuses Argo CD accepts from a script; anything else it shows as Unknown.
var validStatus = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

// Health is what a script returned.
type Health struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// The functions of Argo CD's safe os library, taken from gopher-lua's own os library (Argo CD's
// are copies of gopher-lua's).
var safeOs = func() map[string]lua.LGFunction {
	l := lua.NewState()
	defer l.Close()
	funcs := map[string]lua.LGFunction{}
	for _, name := range []string{"time", "date"} {
		funcs[name] = l.GetField(l.GetGlobal(lua.OsLibName), name).(*lua.LFunction).GFunction
	}
	return funcs
}()

func newState(env Env) *lua.LState {
	l := lua.NewState(lua.Options{SkipOpenLibs: env != BuiltIn})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		// As Argo CD does: the safe os is registered under the table library's name. Since table
		// is loaded already, RegisterModule returns it unchanged and no os global appears.
		{lua.OsLibName, func(l *lua.LState) int {
			l.Push(l.RegisterModule(lua.TabLibName, safeOs))
			return 1
		}},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			panic(err)
		}
	}
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		l.Push(l.SetFuncs(l.NewTable(), safeOs))
		return 1
	})
	return l
}

// toLua converts a decoded JSON value as Argo CD's decodeValue does: numbers become Lua numbers
// (gopher-lua has only float64), null is nil, and nulls in arrays are skipped (LTable.Append
// ignores nil), so the array closes up.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for k, item := range v {
			t.RawSetH(lua.LString(k), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

// Eval runs a health script on an object, as Argo CD's ExecuteHealthLua does, and returns what
// Argo CD would show, or an error where Argo CD would fail or show no usable health.
func Eval(script, chunkName string, obj map[string]any, env Env) (Health, error) {
	l := newState(env)
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	fn, err := l.Load(strings.NewReader(script), chunkName)
	if err != nil {
		return Health{}, fmt.Errorf("the script does not compile as Lua 5.1 (gopher-lua): %s", luaError(err))
	}
	l.Push(fn)
	if err := l.PCall(0, lua.MultRet, nil); err != nil {
		return Health{}, fmt.Errorf("the script failed: %s", luaError(err))
	}
	ret := l.Get(-1)
	if ret == lua.LNil {
		return Health{}, errors.New("the script returned nothing: Argo CD would report no health for the resource")
	}
	t, ok := ret.(*lua.LTable)
	if !ok {
		return Health{}, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	return readHealth(t)
}

// luaError is the message of a gopher-lua error, without the stack traceback.
func luaError(err error) string {
	var apiErr *lua.ApiError
	if errors.As(err, &apiErr) && apiErr.Object != nil {
		if apiErr.Cause != nil && apiErr.Type == lua.ApiErrorRun {
			return apiErr.Cause.Error()
		}
		return strings.TrimSpace(apiErr.Object.String())
	}
	return strings.TrimSpace(err.Error())
}

// readHealth reads {status = ..., message = ...} as Argo CD does (it encodes the table as JSON and
// decodes that into its HealthStatus): string keys only, both fields strings, status one of
// Argo CD's; a table that encodes as a JSON array (empty, or with number keys) gives no health.
func readHealth(t *lua.LTable) (Health, error) {
	var h Health
	var problem error
	n := 0
	t.ForEach(func(k, v lua.LValue) {
		n++
		key, ok := k.(lua.LString)
		if !ok {
			problem = fmt.Errorf("the returned table has a %s key (%s): Argo CD reads it as a JSON array and reports no health", k.Type(), k)
			return
		}
		switch v.Type() {
		case lua.LTFunction, lua.LTUserData, lua.LTThread, lua.LTChannel:
			problem = fmt.Errorf("hs.%s is a %s: Argo CD cannot encode it and fails", key, v.Type())
			return
		}
		switch key {
		case "status", "message":
			s, ok := v.(lua.LString)
			if !ok {
				problem = fmt.Errorf("hs.%s is a %s, not a string: Argo CD fails to read the result", key, v.Type())
				return
			}
			if key == "status" {
				h.Status = string(s)
			} else {
				h.Message = string(s)
			}
		}
	})
	if problem != nil {
		return Health{}, problem
	}
	if n == 0 {
		return Health{}, errors.New("the script returned an empty table: Argo CD would report no health for the resource")
	}
	if !validStatus[h.Status] {
		return Health{}, fmt.Errorf("invalid health status %q: Argo CD would show Unknown (\"Lua returned an invalid health status\")", h.Status)
	}
	return h, nil
}

// decodeObject reads one Kubernetes object, JSON or YAML.
func decodeObject(data []byte) (map[string]any, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	switch v := v.(type) {
	case map[string]any:
		return v, nil
	case nil:
		return nil, errors.New("expected one object, got nothing")
	case []any:
		return nil, errors.New("expected one object, got an array")
	default:
		return nil, fmt.Errorf("expected one object, got %v", v)
	}
}

// ---- test ----

type testFile struct {
	Tests []struct {
		HealthStatus Health `json:"healthStatus"`
		InputPath    string `json:"inputPath"`
	} `json:"tests"`
}

// RunTests runs every health_test.yaml in fsys (a resource_customizations tree, or one GROUP/KIND
// directory, named rootName) and writes a report to out. Cases are named GROUP/KIND/INPUTPATH, as
// in Argo CD. It returns the number of failures, or an error when nothing could be tested.
func RunTests(fsys fs.FS, rootName string, out io.Writer) (int, error) {
	var dirs []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == "health.lua" {
			dirs = append(dirs, path.Dir(p))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(dirs) == 0 {
		return 0, errors.New("no health.lua found")
	}
	sort.Strings(dirs)
	failures, cases := 0, 0
	for _, dir := range dirs {
		name := dir
		if dir == "." {
			name = rootName
		}
		f, n := testDir(fsys, dir, name, out)
		failures, cases = failures+f, cases+n
	}
	if failures == 0 {
		fmt.Fprintf(out, "PASS %d check(s), %d case(s), each as an argocd-cm and as a built-in script\n", len(dirs), cases)
	}
	return failures, nil
}

// testDir returns the number of failures and of cases.
func testDir(fsys fs.FS, dir, name string, out io.Writer) (int, int) {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(out, "FAIL %s: %s\n", name, fmt.Sprintf(format, args...))
		return 1
	}
	cases := 0
	script, err := fs.ReadFile(fsys, path.Join(dir, "health.lua"))
	if err != nil {
		return fail("%v", err), 0
	}
	raw, err := fs.ReadFile(fsys, path.Join(dir, "health_test.yaml"))
	if err != nil {
		return fail("every health.lua needs a health_test.yaml beside it: %v", err), 0
	}
	var tf testFile
	if err := yaml.UnmarshalStrict(raw, &tf); err != nil {
		return fail("health_test.yaml: %v", err), 0
	}
	if len(tf.Tests) == 0 {
		return fail("health_test.yaml has no tests"), 0
	}
	failures := 0
	used := map[string]bool{}
	for _, tc := range tf.Tests {
		cases++
		input := path.Clean(tc.InputPath)
		used[input] = true
		label := name + "/" + input
		data, err := fs.ReadFile(fsys, path.Join(dir, input))
		if err != nil {
			failures += fail("%s: %v", input, err)
			continue
		}
		obj, err := decodeObject(data)
		if err != nil {
			failures += fail("%s: %v", input, err)
			continue
		}
		ok := true
		for _, env := range []Env{ArgoCDCM, BuiltIn} {
			got, err := Eval(string(script), path.Join(name, "health.lua"), obj, env)
			if err != nil {
				fmt.Fprintf(out, "FAIL %s [%s]\n  want %s\n  got  error: %v\n", label, env, show(tc.HealthStatus), err)
				ok = false
				continue
			}
			if got != tc.HealthStatus {
				fmt.Fprintf(out, "FAIL %s [%s]\n%s", label, env, diff(tc.HealthStatus, got))
				ok = false
			}
		}
		if ok {
			fmt.Fprintf(out, "ok   %s: %s\n", label, show(tc.HealthStatus))
		} else {
			failures++
		}
	}
	// A file in testdata/ that no test reads is a case someone forgot to list.
	entries, _ := fs.ReadDir(fsys, path.Join(dir, "testdata"))
	for _, e := range entries {
		if p := path.Join("testdata", e.Name()); !e.IsDir() && !used[p] {
			failures += fail("%s is not the inputPath of any test in health_test.yaml", p)
		}
	}
	return failures, cases
}

func show(h Health) string { return fmt.Sprintf("%s %q", h.Status, h.Message) }

func diff(want, got Health) string {
	var b strings.Builder
	if want.Status != got.Status {
		fmt.Fprintf(&b, "  status:  want %s\n           got  %s\n", want.Status, got.Status)
	}
	if want.Message != got.Message {
		fmt.Fprintf(&b, "  message: want %q\n           got  %q\n", want.Message, got.Message)
	}
	return b.String()
}

// ---- check-cm ----

// CMKey is the argocd-cm key of the health check at luaPath (…/GROUP/KIND/health.lua).
func CMKey(luaPath string) string {
	dir := filepath.Dir(filepath.Clean(luaPath))
	return "resource.customizations.health." + filepath.Base(filepath.Dir(dir)) + "_" + filepath.Base(dir)
}

// CheckCM returns nil when the ConfigMap inlines the script byte for byte under key.
func CheckCM(script, cm []byte, key string) error {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	if _, err := l.LoadString(string(script)); err != nil {
		return fmt.Errorf("the script does not compile as Lua 5.1 (gopher-lua): %w", err)
	}
	var m struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(cm, &m); err != nil {
		return err
	}
	if m.Kind != "ConfigMap" || m.Metadata.Name != "argocd-cm" {
		return fmt.Errorf("expected the ConfigMap argocd-cm, got %s %q", m.Kind, m.Metadata.Name)
	}
	inlined, ok := m.Data[key]
	if !ok {
		keys := make([]string, 0, len(m.Data))
		for k := range m.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return fmt.Errorf("no data key %s (keys: %s)", key, strings.Join(keys, ", "))
	}
	if inlined == string(script) {
		return nil
	}
	a, b := strings.Split(string(script), "\n"), strings.Split(inlined, "\n")
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	line := func(l []string) string {
		if i < len(l) {
			return fmt.Sprintf("%q", l[i])
		}
		return "(end of text)"
	}
	return fmt.Errorf("data.%s differs from the script at line %d:\n  script:    %s\n  configmap: %s", key, i+1, line(a), line(b))
}

// ---- main ----

func usage() {
	fmt.Fprint(os.Stderr, `usage: argocd-health run [-open-libs] HEALTH.lua < object.json|yaml
       argocd-health test DIR
       argocd-health check-cm HEALTH.lua ARGOCD-CM.yaml
`)
	os.Exit(2)
}

func die(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "argocd-health: "+format+"\n", args...)
	os.Exit(code)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	switch cmd {
	case "run":
		fl := flag.NewFlagSet("run", flag.ExitOnError)
		openLibs := fl.Bool("open-libs", false, "run as a built-in script (every library open), not as an argocd-cm one")
		_ = fl.Parse(args)
		if fl.NArg() != 1 {
			usage()
		}
		script, err := os.ReadFile(fl.Arg(0))
		if err != nil {
			die(2, "%v", err)
		}
		input, err := io.ReadAll(os.Stdin)
		if err != nil {
			die(2, "stdin: %v", err)
		}
		obj, err := decodeObject(input)
		if err != nil {
			die(2, "stdin: %v", err)
		}
		env := ArgoCDCM
		if *openLibs {
			env = BuiltIn
		}
		h, err := Eval(string(script), fl.Arg(0), obj, env)
		if err != nil {
			die(1, "%v", err)
		}
		fmt.Printf("%s\t%s\n", h.Status, h.Message)
	case "test":
		if len(args) != 1 {
			usage()
		}
		root, err := filepath.Abs(args[0])
		if err != nil {
			die(2, "%v", err)
		}
		// A GROUP/KIND directory is named GROUP/KIND in the report.
		rootName := filepath.ToSlash(filepath.Join(filepath.Base(filepath.Dir(root)), filepath.Base(root)))
		failures, err := RunTests(os.DirFS(root), rootName, os.Stdout)
		if err != nil {
			die(1, "%s: %v", root, err)
		}
		if failures > 0 {
			die(1, "%d failure(s) in %s", failures, root)
		}
	case "check-cm":
		if len(args) != 2 {
			usage()
		}
		script, err := os.ReadFile(args[0])
		if err != nil {
			die(2, "%v", err)
		}
		cm, err := os.ReadFile(args[1])
		if err != nil {
			die(2, "%v", err)
		}
		if err := CheckCM(script, cm, CMKey(args[0])); err != nil {
			die(1, "%s: %v\n  regenerate it from %s (see config/argocd/README.md)", args[1], err, args[0])
		}
		fmt.Printf("OK\t%s inlines %s byte for byte\n", args[1], args[0])
	default:
		usage()
	}
}
