package signals

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	gpp "github.com/prebid/go-gpp"
	"github.com/prebid/go-gpp/sections"
	"github.com/prebid/go-gpp/sections/uspca"
	"github.com/prebid/go-gpp/sections/uspco"
	"github.com/prebid/go-gpp/sections/uspct"
	"github.com/prebid/go-gpp/sections/uspnat"
	"github.com/prebid/go-gpp/sections/usput"
	"github.com/prebid/go-gpp/sections/uspva"
	"github.com/prebid/go-gpp/util"
)

// GPP is what a GPP string says about the US opt-outs tollgate enforces.
// prebid/go-gpp v0.2.0 decodes the US sections 7 (national, v1 layout) to 12
// (CA, VA, CO, UT, CT); every other section from 7 up (the later US states,
// and any id IAB adds) is kept as opaque text by the library, so it ends up
// in Unreadable and fails closed.
type GPP struct {
	raw string
	// Applicable is the section ids that apply (gpp_sid, or every section
	// in the string when gpp_sid is absent).
	Applicable []int
	// Sale, Sharing and TargetedAdvertising are true when an applicable US
	// section says the user opted out (the field's value is 1).
	Sale, Sharing, TargetedAdvertising bool
	// Unreadable lists applicable sections from 7 up that tollgate cannot
	// decode. They count as an opt-out: unknown is never "granted".
	Unreadable []int
}

// USSection reports whether id is, or may be, an IAB GPP US section. Ids 1–6
// are the TCF, header and USP v1 sections; 7 is the national section and
// every id after it a US state (23–27 were added in 2025). An id IAB adds
// later is treated as a US section, so a string tollgate cannot read yet
// fails closed instead of being ignored.
func USSection(id int) bool { return id >= 7 }

// ParseGPP parses a GPP string with prebid/go-gpp; sid is consent_signals.gpp_sid.
func ParseGPP(s string, sid []int) (GPP, error) {
	if s == "" {
		return GPP{}, errors.New("consent_signals.gpp: empty GPP string")
	}
	c, errs := parseGPP(s)
	if len(errs) > 0 {
		return GPP{}, fmt.Errorf("consent_signals.gpp: %w", errors.Join(errs...))
	}
	for i, id := range sid {
		if id < 1 || id > 0xffff {
			return GPP{}, fmt.Errorf("consent_signals.gpp_sid[%d]: %d is not a GPP section id", i, id)
		}
	}
	g := GPP{raw: s}
	applies := func(id int) bool {
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
	for _, sec := range c.Sections {
		id := int(sec.GetID())
		if !applies(id) {
			continue
		}
		g.Applicable = append(g.Applicable, id)
		opted := func(b byte) bool { return b == 1 }
		switch v := sec.(type) {
		case uspnat.USPNAT:
			g.Sale = g.Sale || opted(v.CoreSegment.SaleOptOut)
			g.Sharing = g.Sharing || opted(v.CoreSegment.SharingOptOut)
			g.TargetedAdvertising = g.TargetedAdvertising || opted(v.CoreSegment.TargetedAdvertisingOptOut)
		case uspca.USPCA:
			g.Sale = g.Sale || opted(v.CoreSegment.SaleOptOut)
			g.Sharing = g.Sharing || opted(v.CoreSegment.SharingOptOut)
		case uspva.USPVA:
			g.core(v.CoreSegment)
		case uspco.USPCO:
			g.core(v.CoreSegment)
		case uspct.USPCT:
			g.core(v.CoreSegment)
		case usput.USPUT:
			g.Sale = g.Sale || opted(v.CoreSegment.SaleOptOut)
			g.TargetedAdvertising = g.TargetedAdvertising || opted(v.CoreSegment.TargetedAdvertisingOptOut)
		default:
			if USSection(id) {
				g.Unreadable = append(g.Unreadable, id)
			}
		}
	}
	sort.Ints(g.Applicable)
	return g, nil
}

// core reads the shared US core segment of sections 9, 10 and 12 (VA, CO, CT).
func (g *GPP) core(c sections.CommonUSCoreSegment) {
	g.Sale = g.Sale || c.SaleOptOut == 1
	g.TargetedAdvertising = g.TargetedAdvertising || c.TargetedAdvertisingOptOut == 1
}

// parseGPP guards the library call against decoder panics on hostile input.
func parseGPP(s string) (c gpp.GppContainer, errs []error) {
	if strings.Count(s, "~") > 64 {
		return c, []error{errors.New("too many sections")}
	}
	if err := checkGPPHeader(s); err != nil {
		return c, []error{err}
	}
	defer func() {
		if r := recover(); r != nil {
			errs = []error{errors.New("unreadable GPP string")}
		}
	}()
	return gpp.Parse(s)
}

// checkGPPHeader reads the header's section-id range before the library
// does: go-gpp v0.2.0 loops forever on a range ending at 65535 (its uint16
// counter wraps) and allocates per id on huge ranges, so a hostile 20-byte
// string could stall ingest. The ids must also match the sections sent.
func checkGPPHeader(s string) error {
	head, _, _ := strings.Cut(s, "~")
	if head == "" || head[0] != 'D' {
		return errors.New("GPP header must start with D (type 3)")
	}
	bs, err := util.NewBitStreamFromBase64(head)
	if err != nil {
		return fmt.Errorf("GPP header: %w", err)
	}
	if err := checkFibonacciBits(head); err != nil {
		return err
	}
	bs.SetPosition(12) // type and version, 6 bits each
	r, err := bs.ReadFibonacciRange()
	if err != nil {
		return fmt.Errorf("GPP header section ids: %w", err)
	}
	n := 0
	for _, e := range r.Range {
		if e.EndID < e.StartID || e.EndID == 0xffff {
			return errors.New("GPP header: bad section id range")
		}
		n += int(e.EndID-e.StartID) + 1
		if n > strings.Count(s, "~") {
			return errors.New("GPP header: more section ids than sections")
		}
	}
	return nil
}

// checkFibonacciBits refuses a header whose section-id list goes more than
// 30 bits without the "11" that ends every Fibonacci code: no uint16 id needs
// a longer code, and go-gpp v0.2.0 computes Fibonacci numbers above its table
// by plain recursion, so a long code costs exponential time (seconds for a
// 20-byte string found by the fuzzer).
func checkFibonacciBits(head string) error {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	since, prev := 0, false
	for i := 24; i < len(head)*6; i++ { // after type, version and range count
		v := strings.IndexByte(alphabet, head[i/6])
		if v < 0 {
			return errors.New("GPP header: not base64url")
		}
		bit := v&(0x20>>(i%6)) != 0
		if bit && prev {
			since, prev = 0, false
			continue
		}
		prev = bit
		if since++; since > 30 {
			return errors.New("GPP header: section id out of range")
		}
	}
	return nil
}

// Raw is the GPP string as received (for the consent proof).
func (g GPP) Raw() string { return g.raw }

// OptedOut is true when an applicable US section says Sale, Sharing or
// Targeted Advertising opt-out, or cannot be read.
func (g GPP) OptedOut() bool {
	return g.Sale || g.Sharing || g.TargetedAdvertising || len(g.Unreadable) > 0
}
