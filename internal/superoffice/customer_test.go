package superoffice

import (
	"reflect"
	"strings"
	"testing"
)

// TestDecodeEntityCustomer: the customer fields asked for come out of the
// same decoding as the audit facts, as sent; nothing else does.
func TestDecodeEntityCustomer(t *testing.T) {
	jsonBody := readFixture(t, "reset.json")
	xmlBody := readFixture(t, "reset.xml")
	tests := []struct {
		name, ct, ce string
		body         []byte
		ask          []string
		want         map[string]string
		wantErr      string // substring of CustomerErr; "" for none
	}{
		{name: "none asked", ct: ctJSON, body: jsonBody},
		{name: "unknown names only", ct: ctJSON, body: jsonBody, ask: []string{"SessionKey", "FirstMessage"}},
		{name: "json fixture", ct: ctJSON, body: jsonBody, ask: []string{"customeremail", CustomerHost},
			want: map[string]string{CustomerEmail: "retta.reichel@hegmann.name", CustomerHost: "visitor-host-203.0.113.77"}},
		{name: "xml fixture", ct: ctXML, body: xmlBody, ask: []string{"customeremail", CustomerHost},
			want: map[string]string{CustomerEmail: "retta.reichel@hegmann.name", CustomerHost: "visitor-host-203.0.113.77"}},
		{name: "json gzip fixture", ct: ctJSON, ce: "gzip", body: gzipBytes(t, jsonBody), ask: []string{CustomerName},
			want: map[string]string{CustomerName: "Nitzsche Group"}},
		{name: "json null and absent left out", ct: ctJSON, ask: CustomerFields[:],
			body: []byte(`{"ChatSessionId": 1, "customerName": null, "CustomerPhone": "", "CustomerAlias": "a\u00e9"}`),
			want: map[string]string{CustomerPhone: "", CustomerAlias: "aé"}},
		{name: "json not a string", ct: ctJSON, ask: []string{CustomerPhone, CustomerName},
			body:    []byte(`{"ChatSessionId": 1, "CustomerName": "n", "CustomerPhone": 6360}`),
			want:    map[string]string{CustomerName: "n"},
			wantErr: "CustomerPhone is not a string"},
		{name: "json field not asked may be anything", ct: ctJSON, ask: []string{CustomerName},
			body: []byte(`{"ChatSessionId": 1, "CustomerName": "n", "CustomerPhone": {"x": 1}}`),
			want: map[string]string{CustomerName: "n"}},
		{name: "xml text as sent, nil left out, nested text skipped", ct: ctXML, ask: CustomerFields[:],
			body: []byte(`<ChatSessionEntity xmlns:i="x"><ChatSessionId>1</ChatSessionId>
				<CustomerName> Jane <b>x</b>Doe </CustomerName><customerphone i:nil="true">1</customerphone>
				<CustomerHost><![CDATA[h]]><!-- c -->ost</CustomerHost><CustomerAlias/></ChatSessionEntity>`),
			want: map[string]string{CustomerName: " Jane Doe ", CustomerHost: "host", CustomerAlias: ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeEntity(tt.body, tt.ct, tt.ce, DecodeOptions{Customer: tt.ask})
			if err != nil {
				t.Fatal(err)
			}
			if e.Session == nil || e.Session.ID == 0 {
				t.Fatalf("session facts missing: %+v", e)
			}
			if tt.want == nil {
				if e.Customer != nil || e.CustomerErr != nil {
					t.Fatalf("customer fields decoded without being asked: %v %v", e.Customer, e.CustomerErr)
				}
				return
			}
			if !reflect.DeepEqual(e.Customer, tt.want) {
				t.Errorf("Customer = %q, want %q", e.Customer, tt.want)
			}
			switch {
			case tt.wantErr == "" && e.CustomerErr != nil:
				t.Errorf("CustomerErr = %v", e.CustomerErr)
			case tt.wantErr != "" && (e.CustomerErr == nil || !strings.Contains(e.CustomerErr.Error(), tt.wantErr)):
				t.Errorf("CustomerErr = %v, want one saying %q", e.CustomerErr, tt.wantErr)
			}
		})
	}
}

func TestCustomerField(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"CustomerName", CustomerName},
		{"customercompanyname", CustomerCompanyName},
		{"CUSTOMEREMAIL", CustomerEmail},
		{"SessionKey", ""},
		{"Customer", ""},
		{"", ""},
	} {
		if got := CustomerField(tc.in); got != tc.want {
			t.Errorf("CustomerField(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestRedactedCoversCustomerFields: whatever may be opted in to for the
// record never reaches a policy.
func TestRedactedCoversCustomerFields(t *testing.T) {
	for _, f := range CustomerFields {
		found := false
		for _, r := range Redacted {
			found = found || r == f
		}
		if !found {
			t.Errorf("%s is not redacted from the policy input", f)
		}
	}
}
