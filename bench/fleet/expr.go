package fleet

import (
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The expressions the fake table evaluates are the subset of DynamoDB's condition and update
// expression grammar that checkpoint.DynamoDBStore sends: conditions built from
// attribute_exists, attribute_not_exists and "=" joined by AND and OR with parentheses, and
// update expressions with SET, REMOVE and ADD clauses. Anything else is an error, which the
// fake records and the harness fails on, so a store that starts sending a new form cannot be
// measured against a table that silently misreads it.

type condNode interface {
	eval(item map[string]types.AttributeValue) bool
}

type condAnd struct{ l, r condNode }
type condOr struct{ l, r condNode }
type condExists struct {
	attr string
	want bool
}
type condEq struct {
	attr string
	val  types.AttributeValue
}

func (c condAnd) eval(it map[string]types.AttributeValue) bool { return c.l.eval(it) && c.r.eval(it) }
func (c condOr) eval(it map[string]types.AttributeValue) bool  { return c.l.eval(it) || c.r.eval(it) }
func (c condExists) eval(it map[string]types.AttributeValue) bool {
	_, ok := it[c.attr]
	return ok == c.want
}
func (c condEq) eval(it map[string]types.AttributeValue) bool {
	v, ok := it[c.attr]
	return ok && equalAV(v, c.val)
}

// equalAV compares two scalar attribute values as DynamoDB's "=" does: same type and value,
// numbers by numeric value.
func equalAV(a, b types.AttributeValue) bool {
	switch a := a.(type) {
	case *types.AttributeValueMemberS:
		b, ok := b.(*types.AttributeValueMemberS)
		return ok && a.Value == b.Value
	case *types.AttributeValueMemberN:
		b, ok := b.(*types.AttributeValueMemberN)
		if !ok {
			return false
		}
		x, err1 := strconv.ParseFloat(a.Value, 64)
		y, err2 := strconv.ParseFloat(b.Value, 64)
		return err1 == nil && err2 == nil && x == y
	}
	return false
}

type exprParser struct {
	toks   []string
	pos    int
	names  map[string]string
	values map[string]types.AttributeValue
}

func tokenize(s string) []string {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ':
			i++
		case c == '(' || c == ')' || c == ',' || c == '=':
			toks = append(toks, string(c))
			i++
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" (),=", rune(s[j])) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks
}

func (p *exprParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *exprParser) next() string {
	t := p.peek()
	p.pos++
	return t
}

func (p *exprParser) expect(t string) error {
	if got := p.next(); got != t {
		return fmt.Errorf("expected %q, got %q", t, got)
	}
	return nil
}

func (p *exprParser) name(tok string) (string, error) {
	n, ok := p.names[tok]
	if !ok {
		return "", fmt.Errorf("unknown attribute name placeholder %q", tok)
	}
	return n, nil
}

func (p *exprParser) value(tok string) (types.AttributeValue, error) {
	v, ok := p.values[tok]
	if !ok {
		return nil, fmt.Errorf("unknown attribute value placeholder %q", tok)
	}
	return v, nil
}

// parseCondition parses a condition expression of the supported subset.
func parseCondition(s string, names map[string]string, values map[string]types.AttributeValue) (condNode, error) {
	p := &exprParser{toks: tokenize(s), names: names, values: values}
	n, err := p.or()
	if err != nil {
		return nil, fmt.Errorf("condition %q: %w", s, err)
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("condition %q: trailing %q", s, p.peek())
	}
	return n, nil
}

func (p *exprParser) or() (condNode, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.peek() == "OR" {
		p.next()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = condOr{l, r}
	}
	return l, nil
}

func (p *exprParser) and() (condNode, error) {
	l, err := p.factor()
	if err != nil {
		return nil, err
	}
	for p.peek() == "AND" {
		p.next()
		r, err := p.factor()
		if err != nil {
			return nil, err
		}
		l = condAnd{l, r}
	}
	return l, nil
}

func (p *exprParser) factor() (condNode, error) {
	switch t := p.next(); t {
	case "(":
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		return n, p.expect(")")
	case "attribute_exists", "attribute_not_exists":
		if err := p.expect("("); err != nil {
			return nil, err
		}
		a, err := p.name(p.next())
		if err != nil {
			return nil, err
		}
		return condExists{attr: a, want: t == "attribute_exists"}, p.expect(")")
	default:
		a, err := p.name(t)
		if err != nil {
			return nil, err
		}
		if err := p.expect("="); err != nil {
			return nil, err
		}
		v, err := p.value(p.next())
		if err != nil {
			return nil, err
		}
		return condEq{attr: a, val: v}, nil
	}
}

// applyUpdate applies an update expression of SET a = v, REMOVE a and ADD a v (numbers) clauses
// to a copy of item and returns the copy.
func applyUpdate(item map[string]types.AttributeValue, s string, names map[string]string, values map[string]types.AttributeValue) (map[string]types.AttributeValue, error) {
	out := maps.Clone(item)
	if out == nil {
		out = map[string]types.AttributeValue{}
	}
	p := &exprParser{toks: tokenize(s), names: names, values: values}
	for p.pos < len(p.toks) {
		clause := p.next()
		for {
			a, err := p.name(p.next())
			if err != nil {
				return nil, fmt.Errorf("update %q: %w", s, err)
			}
			switch clause {
			case "SET":
				if err := p.expect("="); err != nil {
					return nil, fmt.Errorf("update %q: %w", s, err)
				}
				v, err := p.value(p.next())
				if err != nil {
					return nil, fmt.Errorf("update %q: %w", s, err)
				}
				out[a] = v
			case "REMOVE":
				delete(out, a)
			case "ADD":
				v, err := p.value(p.next())
				if err != nil {
					return nil, fmt.Errorf("update %q: %w", s, err)
				}
				add, ok := v.(*types.AttributeValueMemberN)
				if !ok {
					return nil, fmt.Errorf("update %q: ADD of a non-number", s)
				}
				sum, _ := strconv.ParseFloat(add.Value, 64)
				if cur, ok := out[a].(*types.AttributeValueMemberN); ok {
					x, _ := strconv.ParseFloat(cur.Value, 64)
					sum += x
				}
				out[a] = &types.AttributeValueMemberN{Value: strconv.FormatFloat(sum, 'f', -1, 64)}
			default:
				return nil, fmt.Errorf("update %q: unsupported clause %q", s, clause)
			}
			if p.peek() != "," {
				break
			}
			p.next()
		}
	}
	return out, nil
}
