module github.com/k1sso/k1sso/interop/tools/dex

go 1.26.8
