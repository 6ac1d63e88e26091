//go:build linux

package vfs

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMapErr(t *testing.T) {
	if mapErr(nil) != nil {
		t.Fatal("mapErr(nil) != nil")
	}
	for _, errno := range []error{unix.ENOSPC, unix.EDQUOT} {
		err := mapErr(&os.PathError{Op: "fallocate", Path: "/x", Err: errno})
		if !errors.Is(err, ErrNoSpace) || !errors.Is(err, errno) {
			t.Errorf("mapErr(%v) = %v: want both ErrNoSpace and the errno", errno, err)
		}
	}
	if err := mapErr(unix.EIO); errors.Is(err, ErrNoSpace) || !errors.Is(err, unix.EIO) {
		t.Errorf("mapErr(EIO) = %v", err)
	}
}
