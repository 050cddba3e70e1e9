# Conveniences; the README's commands work without make.
.PHONY: test test-lean image image-lean probe release bench
test:
	go tool gotestsum -- -race -timeout 30m ./...
test-lean:
	go tool gotestsum -- -race -tags lean -timeout 30m ./...
image:
	deploy/build-image.sh healthbridge:latest
image-lean:
	deploy/build-image.sh --lean healthbridge:lean
probe:
	CGO_ENABLED=0 go build -tags "lean nethttpomithttp2" -trimpath -gcflags=all=-l -ldflags="-s -w" -o healthbridge-probe ./cmd/healthbridge-probe
release:
	deploy/release.sh $(VERSION)
bench:
	go test -run XXX -bench . ./internal/server/
	go run ./bench/readyz -n 50000 -rounds 3
	go run ./bench/readyz -wrk -rounds 5 -d 4s
	go run ./bench/probe -n 200
	go run ./bench/idle
	go run ./bench/scale -linger
	go run ./bench/scale -kind tcp -n 10000
	go run ./bench/scale -kind http -n 1000
	go run ./bench/scale -kind exec -n 200
	go run ./bench/reaper
