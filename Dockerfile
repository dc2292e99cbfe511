# Multi-stage build: a static meridian binary on a minimal, non-root image.
#
# Try it (from the repository root; examples/container.yaml is the quickstart
# with listeners on 0.0.0.0, which a published port needs, and `demo` starts
# the demo upstreams it points at inside the container):
#   docker build -t meridian .
#   docker run --rm -v "$PWD/examples:/etc/meridian:ro" \
#     -p 8080:8080 -p 5353:5353/udp -p 5353:5353/tcp \
#     -p 127.0.0.1:9090:9090 -p 127.0.0.1:9100:9100 \
#     meridian demo -config /etc/meridian/container.yaml -control 0.0.0.0:9100
#   curl http://127.0.0.1:8080/
#
# Serve your own config: mount the directory that holds meridian.yaml (its
# listen: addresses on 0.0.0.0, not 127.0.0.1) at /etc/meridian; the default
# command serves /etc/meridian/meridian.yaml and reloads it when it changes.
#   docker run -v /srv/meridian:/etc/meridian:ro -p 8080:8080 ... meridian
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/meridian ./cmd/meridian

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/meridian /usr/local/bin/meridian
USER nonroot:nonroot
VOLUME ["/etc/meridian"]
EXPOSE 8080 8443 5353/udp 5353/tcp 9090
ENTRYPOINT ["/usr/local/bin/meridian"]
CMD ["run", "-config", "/etc/meridian/meridian.yaml"]
