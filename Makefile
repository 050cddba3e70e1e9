# Conveniences; the README's commands work without make.
.PHONY: test image bench
test:
	go test -race -timeout 30m ./... ./health/...
image:
	deploy/build-image.sh healthbridge:latest
bench:
	go test -run XXX -bench . ./internal/server/
	go run ./bench/readyz -n 50000 -rounds 3
	go run ./bench/probe -n 200
