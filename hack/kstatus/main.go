// kstatus reads one Kubernetes object as JSON on stdin and prints the kstatus verdict
// (sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute) as one line of JSON:
//
//	{"status":"Current","message":"Resource is Ready"}
//
// Exit 0 when a status was computed, 2 on bad input or when Compute fails.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: kstatus < object.json   (one Kubernetes object as JSON on stdin)")
		os.Exit(2)
	}
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	// utiljson decodes whole numbers as int64, as unstructured accessors (metadata.generation,
	// status.observedGeneration) expect; encoding/json would give float64 and Compute would fail.
	var obj map[string]any
	if err := utiljson.Unmarshal(data, &obj); err != nil {
		fail("stdin is not a JSON object: %v", err)
	}
	if obj == nil {
		fail("stdin is not a JSON object (got null)")
	}
	u := &unstructured.Unstructured{Object: obj}
	if u.GetKind() == "" || u.GetAPIVersion() == "" {
		fail("the object has no apiVersion or kind")
	}
	res, err := status.Compute(u)
	if err != nil {
		fail("computing status: %v", err)
	}
	out, err := json.Marshal(verdict{Status: res.Status.String(), Message: res.Message})
	if err != nil {
		fail("encoding result: %v", err)
	}
	fmt.Println(string(out))
}
