# Multi-stage build: a static meridian binary on a minimal, non-root image.
#   docker build -t meridian .
#   docker run --rm -p 8080:8080 -p 5353:5353/udp -p 9090:9090 \
#     -v $PWD/examples:/etc/meridian:ro meridian run -config /etc/meridian/quickstart.yaml
# (Inside a container, listen on 0.0.0.0 rather than 127.0.0.1.)
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
