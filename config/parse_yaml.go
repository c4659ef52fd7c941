package config

import (
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// field is one key of a mapping with its value; value is nil for a null.
type field struct {
	line  int // line of the key
	value ast.Node
}

// mapping reads the mapping n (nil reads as empty) at path. Keys not in
// allowed are errors that list the allowed ones, except those in forbidden,
// whose problem is given. ok is false when n is not a mapping.
func (d *decoder) mapping(n ast.Node, line int, path string, allowed []string, forbidden map[string]string) (map[string]field, bool) {
	fields := map[string]field{}
	var pairs []*ast.MappingValueNode
	switch v := n.(type) {
	case nil:
		return fields, true
	case *ast.MappingNode:
		pairs = v.Values
	case *ast.MappingValueNode:
		pairs = []*ast.MappingValueNode{v}
	default:
		what := "must be"
		if path == "" {
			what = "the configuration must be"
		}
		d.errorf(line, path, "%s a mapping with the keys %s, got %s", what, strings.Join(allowed, ", "), describe(n))
		return nil, false
	}
	for _, p := range pairs {
		kline := lineOf(p.Key)
		if p.Key.IsMergeKey() {
			d.errorf(kline, join(path, "<<"), "merge keys are not supported; allowed keys here: %s", strings.Join(allowed, ", "))
			continue
		}
		key, ok := scalarText(d.resolve(p.Key))
		if !ok {
			d.errorf(kline, path, "a key must be a plain word, got %s", describe(d.resolve(p.Key)))
			continue
		}
		if problem, ok := forbidden[key]; ok {
			d.errorf(kline, join(path, show(key)), "%s", problem)
			continue
		}
		known := false
		for _, a := range allowed {
			known = known || a == key
		}
		if !known {
			d.errorf(kline, join(path, show(key)), "unknown key; allowed keys here: %s", strings.Join(allowed, ", "))
			continue
		}
		fields[key] = field{line: kline, value: d.resolve(p.Value)}
		d.lines[join(path, key)] = kline
	}
	return fields, true
}

// sequence reads the list in f at path; ok is false (and the error is
// recorded) when it is not a list.
func (d *decoder) sequence(f field, path, want string) ([]item, bool) {
	s, ok := f.value.(*ast.SequenceNode)
	if !ok {
		d.errorf(f.line, path, "must be a list of %s, got %s", want, describe(f.value))
		return nil, false
	}
	out := make([]item, len(s.Values))
	for i, v := range s.Values {
		line := lineOf(v)
		if i < len(s.Entries) && s.Entries[i] != nil && s.Entries[i].Start != nil {
			line = s.Entries[i].Start.Position.Line // the "-": a null value has no token of its own
		}
		out[i] = item{d.resolve(v), max(line, f.line)}
	}
	return out, true
}

// item is one element of a list: its resolved value (nil for a null) and
// its line.
type item struct {
	value ast.Node
	line  int
}

// resolve strips tags and anchors and follows aliases; a null becomes nil.
func (d *decoder) resolve(n ast.Node) ast.Node {
	for range 64 { // an alias may point at an alias; bound the chain
		switch v := n.(type) {
		case nil, *ast.NullNode:
			return nil
		case *ast.TagNode:
			n = v.Value
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			target, ok := d.anchors[v.Value.GetToken().Value]
			if !ok {
				return n
			}
			n = target
		default:
			return n
		}
	}
	return n
}

func lineOf(n ast.Node) int {
	if n == nil {
		return 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// describe says what a value is for a "got ..." message.
func describe(n ast.Node) string {
	switch v := n.(type) {
	case nil:
		return "nothing"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.AliasNode:
		return "an alias to an unknown anchor"
	case *ast.StringNode:
		return quoteCut(v.Value)
	}
	if s, ok := scalarText(n); ok {
		return show(s)
	}
	return n.Type().String()
}

func scalarText(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		return v.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return v.GetToken().Value, true
	}
	return "", false
}

// sizer counts the nodes of a tree with every alias counted as the nodes of
// its anchor's value, as the decoder walks them.
type sizer struct {
	anchors map[string]ast.Node
	memo    map[string]int
	busy    map[string]bool // anchors being counted: an alias cycle counts once
	n       int
}

func (s *sizer) size(root ast.Node) int {
	s.n = 0
	ast.Walk(s, root)
	return s.n
}

func (s *sizer) Visit(n ast.Node) ast.Visitor {
	s.n++
	if s.n > MaxExpanded {
		return nil // enough: stop walking
	}
	al, ok := n.(*ast.AliasNode)
	if !ok || al.Value == nil {
		return s
	}
	name := al.Value.GetToken().Value
	target, ok := s.anchors[name]
	if !ok || s.busy[name] {
		return nil
	}
	size, ok := s.memo[name]
	if !ok {
		s.busy[name] = true
		sub := &sizer{anchors: s.anchors, memo: s.memo, busy: s.busy}
		size = sub.size(target)
		delete(s.busy, name)
		s.memo[name] = size
	}
	s.n += size
	return nil
}

type anchorCollector map[string]ast.Node

func (a anchorCollector) Visit(n ast.Node) ast.Visitor {
	if an, ok := n.(*ast.AnchorNode); ok && an.Name != nil {
		a[an.Name.GetToken().Value] = an.Value
	}
	return a
}
