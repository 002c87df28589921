package superoffice

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// scanSeeds are documents at the edges of what scanEntity reads itself:
// repeated and differently cased keys, nulls, kinds encoding/json refuses
// for a field, escapes, non-ASCII, numbers it cannot hold, bad syntax.
var scanSeeds = []string{
	`{}`,
	`{"ChatSessionId":1}`,
	`{"chatsessionid":1,"CHATSESSIONID":2}`,
	`{"ChatSessionId":1,"ChatSessionId":null}`,
	`{"ChatSessionId":-0,"TopicId":null,"Rank":-2147483648,"Rating":2147483647}`,
	`{"ChatSessionId":2147483648}`,
	`{"ChatSessionId":1.0}`,
	`{"ChatSessionId":1e2}`,
	`{"ChatSessionId":"1"}`,
	`{"ChatSessionId":01}`,
	`{"TopicId":true}`,
	`{"ChatbotIsActive":true,"chatbotisactive":null}`,
	`{"ChatbotIsActive":1}`,
	`{"User":{"AssociateId":9},"User":{"Name":"x"}}`,
	`{"User":{"AssociateId":9},"User":null,"user":{}}`,
	`{"User":{"associateid":null,"AssociateId":3,"x":[1,{"y":null}]}}`,
	`{"User":[],"ChatSessionId":1}`,
	`{"TransferTo":{"AssociateId":"9"}}`,
	`{"Status":4,"Flags":"a\"b","WhenIdle":null,"WhenEnded":{"x":1},"WhenStarted":[1]}`,
	`{"Status":"In\u0051ueue","Flags":"\ud83d\ude00","WhenRequested":"2019-07-04T02:30:52"}`,
	`{"Chat\u0053essionId":5}`,
	`{"ChatSeſſionId":5}`,
	`{"ChatSessionId":5,"ünknown":1,"nested":{"ü\n":"x"}}`,
	`{"CustomerName":"Ada","customername":null,"CustomerEmail":3,"CustomerPhone":{"a":1}}`,
	`{"ChatSessionId":1,}`,
	`{"ChatSessionId":1} x`,
	`{"ChatSessionId":1}  ` + "\n",
	`[{"ChatSessionId":1}]`,
	`"x"`,
	`{"a":"\x01"}`,
	`{"a":"\q"}`,
	`{"a":"\u12g4"}`,
	`{"a":tru}`,
	`{"a":-}`,
	`{"a":1.}`,
	`{"a":1e}`,
	`{"a" 1}`,
	`{"a":1 "b":2}`,
	`{"a":"` + "\xff\xfe" + `","Status":"` + "\xff" + `"}`,
	`{"a":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`,
	`{"a":` + strings.Repeat(`{"b":`, 70) + `1` + strings.Repeat("}", 70) + `}`,
}

// FuzzScanEntityMatchesEncodingJSON: whatever scanEntity reads itself,
// encoding/json reads without error and to the same values, with and
// without the customer fields.
func FuzzScanEntityMatchesEncodingJSON(f *testing.F) {
	f.Add(readFixture(f, "reset.json"))
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkScanMatches(t, data)
	})
}

func checkScanMatches(t *testing.T, data []byte) {
	t.Helper()
	for _, withCustomer := range []bool{false, true} {
		var fast jsonEntityCustomer
		var c *jsonCustomer
		if withCustomer {
			c = &fast.jsonCustomer
		}
		if !scanEntity(data, &fast.jsonEntity, c) {
			continue // encoding/json decides
		}
		var ref jsonEntityCustomer
		var target any = &ref.jsonEntity
		if withCustomer {
			target = &ref
		}
		if err := json.Unmarshal(data, target); err != nil {
			t.Fatalf("read %q, which encoding/json refuses: %v", data, err)
		}
		if !reflect.DeepEqual(fast, ref) {
			t.Fatalf("%q (customer fields %v):\n read %+v\n want %+v", data, withCustomer, fast, ref)
		}
	}
}

func TestScanEntitySeeds(t *testing.T) {
	for _, s := range scanSeeds {
		checkScanMatches(t, []byte(s))
	}
}

// TestScanEntityReadsTheFixture: a backend's ordinary answer is read in
// one pass, not left to encoding/json (which would still be correct, only
// slower).
func TestScanEntityReadsTheFixture(t *testing.T) {
	var e jsonEntityCustomer
	if !scanEntity(readFixture(t, "reset.json"), &e.jsonEntity, &e.jsonCustomer) {
		t.Fatal("the fixture entity is left to encoding/json")
	}
	if e.ID == nil || *e.ID != 427 || e.User == nil || e.User.AssociateID == nil || *e.User.AssociateID != 9 {
		t.Errorf("read %+v", e)
	}
}
