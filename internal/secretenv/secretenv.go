// Package secretenv reads a secret setting the way every stockflow command does:
// from its environment variable, or from the file named by the variable with
// _FILE appended, as Kubernetes mounts a Secret (MYSQL_DSN or MYSQL_DSN_FILE,
// REDIS_PASSWORD or REDIS_PASSWORD_FILE). Never from a flag: a command line
// is readable by every user of the machine in the process list.
//
// A Var never shows its value: it prints as the names of its variables, and
// the errors of Value name the variables and the file, never the content.
package secretenv

import (
	"fmt"
	"os"
	"strings"
)

// Var is one secret setting as the environment gives it: the variable Name,
// or the file its Name+"_FILE" variable names. The zero Var is unset.
type Var struct {
	// Name is the variable, MYSQL_DSN; Name+"_FILE" names the file.
	Name string
	// File is the value of Name+"_FILE": a path, not a secret.
	File string
	// value is behind a pointer so that printing a struct that holds a Var
	// in an unexported field (where fmt cannot call String) shows an
	// address, not the secret.
	value *string
}

// Lookup reads the secret setting name from getenv: the variable name and
// name+"_FILE". The file is read by Value, not here, so that a command may
// look its settings up before it knows whether it will run (-help).
func Lookup(getenv func(string) string, name string) Var {
	v := getenv(name)
	return Var{Name: name, File: getenv(name + "_FILE"), value: &v}
}

// val is the variable's value, "" for the zero Var.
func (v Var) val() string {
	if v.value == nil {
		return ""
	}
	return *v.value
}

// Set reports whether either variable is set.
func (v Var) Set() bool { return v.val() != "" || v.File != "" }

// Value is the secret: the variable's value, or the content of the file
// without one trailing line break (echo, an editor), or "" when neither is
// set. Both set is an error, so it is never unclear which one is in force;
// so is a file that cannot be read or is empty.
func (v Var) Value() (string, error) {
	switch {
	case v.File == "":
		return v.val(), nil
	case v.val() != "":
		return "", fmt.Errorf("%s and %s_FILE are both set: set one", v.Name, v.Name)
	}
	b, err := os.ReadFile(v.File)
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", v.Name, err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("%s_FILE: %s is empty", v.Name, v.File)
	}
	return s, nil
}

// String names where the secret comes from, never the secret itself; fmt's
// %v and %+v of a Var (or of a struct holding one) print this.
func (v Var) String() string {
	switch {
	case v.File != "" && v.val() != "":
		return v.Name + " and " + v.Name + "_FILE=" + v.File
	case v.File != "":
		return v.Name + "_FILE=" + v.File
	case v.val() != "":
		return v.Name + " (set)"
	}
	return v.Name + " (unset)"
}

// GoString is String, for %#v.
func (v Var) GoString() string { return v.String() }
