//go:build !amd64 || purego

package md5lanes

const haveLanes = false

func blocks16(*[4][lanes]uint32, *[lanes]*byte, int) { panic("md5lanes: no vector lanes") }
