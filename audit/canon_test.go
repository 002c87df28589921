package audit

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// canonBoth returns r's canonical bytes from the direct encoder and from
// the reference round trip, with and without a chain.
func canonBoth(t testing.TB, r *Record) (fast, ref [2][]byte) {
	t.Helper()
	d1, err := newCanonDoc(r)
	if err != nil {
		t.Fatalf("direct: %v", err)
	}
	d2, err := referenceCanonDoc(r)
	if err != nil {
		t.Fatalf("reference: %v", err)
	}
	chain := appendChainJSON(nil, Chain{Seq: 7, Prev: GenesisHash, Hash: GenesisHash})
	return [2][]byte{d1.appendTo(nil, nil), d1.appendTo(nil, chain)}, [2][]byte{d2.appendTo(nil, nil), d2.appendTo(nil, chain)}
}

func TestCanonicalMatchesReference(t *testing.T) {
	cs := fixtureEntity(t)
	nine := int32(9)
	strange := []string{
		"", "plain", "quote \" back \\ slash", "<b>&amp;</b>", "line\nbreak\rtab\t", "\b\f\x00\x01\x1f\x7f",
		"\u2028\u2029", "ü ß 日本 🙂", "bad utf8 \xff\xfe end", "\xc3", "\ufffd", "} , \"resetguard\": {",
	}
	var recs []*Record
	for i, s := range strange {
		r := fsRecord(cs, i)
		r.Reason, r.UserName, r.Path, r.Upstream.Error = s, s, "/p/"+s, s
		r.Decision.Reasons = []string{s, "x"}
		recs = append(recs, r)
	}
	minimal := &Record{Timestamp: time.Unix(0, 0), Action: "chat_session.reset", Route: "rest"}
	denied := fsRecord(cs, 3)
	denied.Upstream, denied.ChatSession, denied.Decision.Reasons = nil, nil, nil
	withCustomer := fsRecord(cs, 4)
	withCustomer.Customer = map[string]string{"CustomerEmail": "hmac:ab", "CustomerName": "Ada \"x\""}
	withCustomer.ChatSession.UserAssociateID = &nine
	chained := fsRecord(cs, 5)
	chained.Chain = &Chain{Seq: 3, Prev: GenesisHash, Hash: GenesisHash} // left out of the canonical form
	fallback := fsRecord(cs, 6)
	fallback.Fallback = true
	// Every optional part at once: forwarded request, kinds, intent link,
	// all four entity times, both associates, customer fields and a chain.
	full := fsRecord(cs, 7)
	entity := *cs
	entity.UserAssociateID, entity.TransferToAssociateID = &nine, &nine
	entity.WhenRequested = time.Date(2026, 11, 25, 9, 0, 0, 123, time.FixedZone("CET", 3600))
	entity.WhenStarted, entity.WhenEnded, entity.WhenIdle = entity.WhenRequested, entity.WhenRequested, entity.WhenRequested
	full.ChatSession = &entity
	full.Forwarded = &Forwarded{Path: "/api/v1/Agents/Chat/ResetChatSession", Body: `{"ChatSessionId":427}`}
	full.Kind, full.IntentSeq, full.Fallback = KindOutcome, 41, true
	full.Upstream.Error, full.Upstream.EntityError = "e", "f"
	full.Customer = map[string]string{"customer_phone": "hmac:1", "customer_alias": "x"}
	full.Chain = &Chain{Seq: 42, Prev: GenesisHash, Hash: GenesisHash}
	intent := NewIntent(full)
	repair := newRepairRecord(time.Unix(5, 0), Repair{Bytes: 3, Offset: 9, SHA256: GenesisHash, SavedAs: "a.torn", RetiredSeq: 4})
	recs = append(recs, minimal, denied, withCustomer, chained, fallback, full, intent, repair)

	for i, r := range recs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			fast, ref := canonBoth(t, r)
			for k := range fast {
				if !bytes.Equal(fast[k], ref[k]) {
					t.Fatalf("canonical forms differ\ndirect:    %s\nreference: %s", fast[k], ref[k])
				}
			}
		})
	}
}

// oddFields writes every kind of field a zap encoder takes, to hold the
// reference path for the kinds a record does not use.
type oddFields struct{}

func (oddFields) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddFloat64("f", 1.5)
	e.AddFloat32("g", 0.25)
	e.AddDuration("d", 1500*time.Millisecond)
	e.AddTime("t", time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC))
	e.AddUint64("u", 1<<63)
	e.AddInt8("i8", -8)
	e.AddBinary("bin", []byte{0, 1, 2})
	e.AddByteString("bs", []byte("b<s>"))
	e.AddComplex128("c", complex(1, 2))
	_ = e.AddReflected("refl", map[string]any{"z": 1, "a": []int{1, 2}})
	_ = e.AddArray("arr", zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
		a.AppendFloat64(2.5)
		a.AppendBool(true)
		a.AppendUint8(7)
		a.AppendDuration(time.Second)
		a.AppendTime(time.Unix(1, 0).UTC())
		_ = a.AppendReflected(nil)
		_ = a.AppendObject(zapcore.ObjectMarshalerFunc(func(e zapcore.ObjectEncoder) error {
			e.AddString("b", "2")
			e.AddString("a", "1")
			return nil
		}))
		return a.AppendArray(stringArray{"x", "y"})
	}))
	e.AddString("dup", "first")
	e.AddString("dup", "second")
	e.OpenNamespace("ns")
	e.AddString("inner", "v")
	e.AddInt("n", 1)
	return nil
}

func TestCanonicalEncoderMatchesReferenceForEveryKind(t *testing.T) {
	enc := func(m zapcore.ObjectMarshaler) (fast, ref []byte) {
		buf := &canonBuf{}
		o := &canonObject{buf: buf}
		if err := m.MarshalLogObject(o); err != nil {
			t.Fatal(err)
		}
		v := o.close()
		if buf.err != nil {
			t.Fatal(buf.err)
		}
		enc, err := recordEncoder.EncodeEntry(zapcore.Entry{}, []zapcore.Field{{Key: "o", Type: zapcore.ObjectMarshalerType, Interface: m}})
		if err != nil {
			t.Fatal(err)
		}
		obj, err := decodeObject(enc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		// The reference form of a member's value: encoding/json's, as
		// canonFromMap writes it.
		e := newSpanEncoder()
		s, err := e.encode(obj["o"])
		if err != nil {
			t.Fatal(err)
		}
		return buf.b[v.start:v.end], e.out.Bytes()[s.start:s.end]
	}
	fast, ref := enc(oddFields{})
	if !bytes.Equal(fast, ref) {
		t.Fatalf("direct:    %s\nreference: %s", fast, ref)
	}
}

func FuzzCanonicalMatchesReference(f *testing.F) {
	for _, s := range []string{"", "a", "\"\\", "\u2028", "\xff", "<&>", "\x00\x1f", "日本"} {
		f.Add(s, s)
	}
	cs := fixtureEntity(f)
	f.Fuzz(func(t *testing.T, a, b string) {
		r := fsRecord(cs, 1)
		r.Reason, r.UserName, r.Upstream.ContentType = a, b, a+b
		r.Decision.Reasons = []string{a, b}
		r.Customer = map[string]string{a: b}
		r.Kind, r.IntentSeq = a, int64(len(b))
		fast, ref := canonBoth(t, r)
		if !bytes.Equal(fast[1], ref[1]) {
			t.Fatalf("canonical forms differ\ndirect:    %s\nreference: %s", fast[1], ref[1])
		}
	})
}

func BenchmarkCanonical(b *testing.B) {
	r := fsRecord(fixtureEntity(b), 1)
	for _, bc := range []struct {
		name  string
		build func(*Record) (*canonDoc, error)
	}{{"direct", newCanonDoc}, {"reference", referenceCanonDoc}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				d, err := bc.build(r)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = sealLine(nil, d, 1, GenesisHash)
				d.free() // as FileSink.Write does once the line is written
			}
		})
	}
}

// referenceCanonDoc builds the canonical form of r the way the definition
// reads (encode, decode, re-encode); newCanonDoc must give the same bytes.
func referenceCanonDoc(r *Record) (*canonDoc, error) {
	c := *r
	c.Chain = nil
	buf, err := recordEncoder.EncodeEntry(zapcore.Entry{}, []zapcore.Field{zap.Inline(&c)})
	if err != nil {
		return nil, fmt.Errorf("audit: encoding record: %w", err)
	}
	defer buf.Free()
	m, err := decodeObject(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("audit: re-reading encoded record: %w", err)
	}
	return canonFromMap(m)
}
