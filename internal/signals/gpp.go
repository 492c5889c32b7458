package signals

import (
	"sort"
	"strconv"
	"strings"
)

// GPP is what a GPP string says about the choices tollgate enforces. Every section IAB's GPP
// defines today is read (IAB @iabgpp/cmpapi 3.2.0): the US sections through one table of field
// widths (gppsections.go), USP v1 (6), and the TCF sections, tcfeuv2 (2) as a TC string and
// tcfcav1 (5). A US section tollgate cannot read (an id or version IAB adds later) fails closed.
type GPP struct {
	raw string
	// Applicable is the section ids that apply (gpp_sid, or every section in the string when
	// gpp_sid is absent).
	Applicable []int
	// Sale, Sharing and TargetedAdvertising are true when an applicable US section says the user
	// opted out (value 1; any value but 0 "not applicable" and 2 "did not opt out").
	Sale, Sharing, TargetedAdvertising bool
	// SensitiveRefused is true when an applicable US section refuses processing of sensitive
	// data: an entry of SensitiveDataProcessing or KnownChildSensitiveDataConsents is 1 (opted
	// out / no consent), or any value but 0 and 2.
	SensitiveRefused bool
	// GPC is the Gpc field of an applicable US section's GPC segment: the user's browser sent
	// Global Privacy Control. It counts as an opt-out (OptedOut).
	GPC bool
	// TCF is the applicable TCF sections (tcfeuv2, tcfcav1), read as TC strings.
	TCF []TCF
	// Unreadable lists applicable US sections that tollgate cannot decode (an id or version it
	// does not know). They count as an opt-out: unknown is never "granted".
	Unreadable []int
}

// Section ids with a meaning of their own (IAB GPP "Section Information").
const (
	sectionTCFEU = 2
	sectionTCFCA = 5
	sectionUSPv1 = 6
	sectionUSNat = 7
)

// USSection reports whether id is, or may be, an IAB GPP US section: USP v1 (6), the national
// section (7) and every state after it (23–27 were added in 2025). An id IAB adds later is
// treated as a US section, so a string tollgate cannot read yet fails closed instead of being
// ignored.
func USSection(id int) bool { return id >= sectionUSPv1 }

// maxSections bounds the sections of one string (IAB defines 27 ids today).
const maxSections = 64

// ParseGPP parses a GPP string; sid is consent_signals.gpp_sid. Errors are *FieldError with
// Field "gpp" or "gpp_sid[i]".
func ParseGPP(s string, sid []int) (GPP, error) {
	if s == "" {
		return GPP{}, fieldErr("gpp", "empty GPP string")
	}
	for i, id := range sid {
		if id < 1 || id > 0xffff {
			return GPP{}, fieldErr("gpp_sid["+strconv.Itoa(i)+"]", "%d is not a GPP section id", id)
		}
	}
	parts := strings.Split(s, "~")
	if len(parts)-1 > maxSections {
		return GPP{}, fieldErr("gpp", "more than %d sections", maxSections)
	}
	ids, err := parseHeader(parts[0], len(parts)-1)
	if err != nil {
		return GPP{}, fieldErr("gpp", "%v", err)
	}
	g := GPP{raw: s}
	for i, id := range ids {
		var sec GPP
		if err := sec.readSection(id, parts[i+1]); err != nil {
			name := SectionName(id)
			if name == "" {
				name = "id " + strconv.Itoa(id)
			}
			return GPP{}, fieldErr("gpp", "section %s: %v", name, err)
		}
		if applies(sid, id) {
			g.add(id, sec)
		}
	}
	sort.Ints(g.Applicable)
	return g, nil
}

func applies(sid []int, id int) bool {
	if len(sid) == 0 {
		return true
	}
	for _, x := range sid {
		if x == id {
			return true
		}
	}
	return false
}

// add merges what one applicable section says: any opt-out wins.
func (g *GPP) add(id int, sec GPP) {
	g.Applicable = append(g.Applicable, id)
	g.Sale = g.Sale || sec.Sale
	g.Sharing = g.Sharing || sec.Sharing
	g.TargetedAdvertising = g.TargetedAdvertising || sec.TargetedAdvertising
	g.SensitiveRefused = g.SensitiveRefused || sec.SensitiveRefused
	g.GPC = g.GPC || sec.GPC
	g.TCF = append(g.TCF, sec.TCF...)
	g.Unreadable = append(g.Unreadable, sec.Unreadable...)
}

// parseHeader reads the header section (type 3, version 1, the Fibonacci range of section ids)
// and checks the ids against the n sections sent: one id per section, in increasing order.
func parseHeader(head string, n int) ([]int, error) {
	r, err := newBitReader(head)
	if err != nil {
		return nil, err
	}
	if typ, err := r.int(6); err != nil || typ != 3 {
		return nil, errorString("header must be type 3 (it starts with D)")
	}
	if v, err := r.int(6); err != nil || v != 1 {
		return nil, errorString("header version must be 1")
	}
	ranges, err := r.fibRange()
	if err != nil {
		return nil, errorString("header section ids: " + err.Error())
	}
	var ids []int
	for _, rg := range ranges {
		if len(ids)+rg.hi-rg.lo+1 > n {
			return nil, errorString("header names more sections than the string has")
		}
		for id := rg.lo; id <= rg.hi; id++ {
			ids = append(ids, id)
		}
	}
	if len(ids) != n {
		return nil, errorString("header names " + strconv.Itoa(len(ids)) + " sections, the string has " + strconv.Itoa(n))
	}
	return ids, nil
}

// readSection decodes one section's text into sec.
func (sec *GPP) readSection(id int, body string) error {
	if body == "" {
		return errorString("empty")
	}
	switch {
	case id == sectionTCFEU:
		tc, err := parseTCF(body)
		if err != nil {
			return err
		}
		sec.TCF = append(sec.TCF, tc)
	case id == sectionTCFCA:
		tc, err := parseTCFCA(body)
		if err != nil {
			return err
		}
		sec.TCF = append(sec.TCF, tc)
	case id == sectionUSPv1:
		return sec.readUSPv1(body)
	case id >= sectionUSNat:
		return sec.readUS(id, body)
	}
	return nil // 1 (TCF EU v1, retired) and 3–4: nothing tollgate reads
}

// readUSPv1 reads a US Privacy string ("1YNN": version, notice, opt-out of sale, LSPA).
func (sec *GPP) readUSPv1(body string) error {
	if len(body) != 4 || !strings.Contains("123456789", body[:1]) || strings.Trim(body[1:], "YN-") != "" {
		return errorString("want a US Privacy string like 1YNN")
	}
	if body[0] != '1' {
		sec.Unreadable = []int{sectionUSPv1}
		return nil
	}
	sec.Sale = body[2] == 'Y'
	return nil
}

// readUS reads a US section through its layout. The core segment comes first; a second
// segment, when the layout has one, follows a '.'. Segments past those are ignored, as IAB's
// decoder does; bits past the last field are padding.
func (sec *GPP) readUS(id int, body string) error {
	segs := strings.Split(body, ".")
	core, err := newBitReader(segs[0])
	if err != nil {
		return err
	}
	version, err := core.int(6)
	if err != nil {
		return err
	}
	l := usLayoutOf(id, version)
	if l == nil {
		sec.Unreadable = []int{id}
		return nil
	}
	core.pos = 0
	if err := readFields(core, l.core, sec.apply); err != nil {
		return err
	}
	if l.sub == nil || len(segs) < 2 || segs[1] == "" {
		return nil
	}
	sub, err := newBitReader(segs[1])
	if err != nil {
		return err
	}
	if err := readFields(sub, l.sub, sec.apply); err != nil {
		return errorString(l.subName + " segment: " + err.Error())
	}
	return nil
}

// readFields reads fields in order, handing each value to visit (i is its index in a list).
func readFields(r *bitReader, fields []field, visit func(f *field, i, v int)) error {
	for k := range fields {
		fl := &fields[k]
		for i := 0; i < fl.count; i++ {
			v, err := r.int(fl.bits)
			if err != nil {
				return errorString(fl.name + ": " + err.Error())
			}
			visit(fl, i, v)
		}
	}
	return nil
}

// apply records what one field value says. Only 0 (not applicable) and 2 (did not opt out,
// consented) leave a choice open; 1 and the undefined 3 count as a refusal.
func (sec *GPP) apply(f *field, _ int, v int) {
	refused := v != 0 && v != 2
	switch f.role {
	case roleSale:
		sec.Sale = sec.Sale || refused
	case roleSharing:
		sec.Sharing = sec.Sharing || refused
	case roleTargeted:
		sec.TargetedAdvertising = sec.TargetedAdvertising || refused
	case roleSensitive, roleChild:
		sec.SensitiveRefused = sec.SensitiveRefused || refused
	case roleGPC:
		sec.GPC = sec.GPC || v == 1
	}
}

// Raw is the GPP string as received (for the consent proof).
func (g GPP) Raw() string { return g.raw }

// OptedOut is true when an applicable US section says Sale, Sharing or Targeted Advertising
// opt-out, carries the user's Global Privacy Control (an opt-out of sale and sharing under the
// state laws that honour it), or cannot be read.
func (g GPP) OptedOut() bool {
	return g.Sale || g.Sharing || g.TargetedAdvertising || g.GPC || len(g.Unreadable) > 0
}

// errorString is a reason inside a FieldError (no path of its own).
type errorString string

func (e errorString) Error() string { return string(e) }
