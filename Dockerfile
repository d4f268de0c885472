# The liveingest binary on a small Debian image, with ffmpeg for the transcode
# function.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/liveingest ./cmd/liveingest

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates ffmpeg \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 liveingest
COPY --from=build /out/liveingest /usr/local/bin/liveingest
USER liveingest
ENTRYPOINT ["/usr/local/bin/liveingest"]
