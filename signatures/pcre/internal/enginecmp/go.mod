module github.com/openutm/utm/signatures/pcre/internal/enginecmp

go 1.26.8

require (
	github.com/dlclark/regexp2 v1.11.5
	github.com/openutm/utm v0.0.0
)

replace github.com/openutm/utm => ../../../..
