// srtcaller is a minimal libsrt caller for the SRT ingest tests: it
// connects in live mode with a stream id (and a passphrase), prints the
// handshake outcome as libsrt reports it to every encoder built on it, and
// with -send streams MPEG-TS from stdin.
//
//   srtcaller HOST PORT STREAMID [PASSPHRASE [PBKEYLEN]] [-send]
//
// With SRTCALLER_KBPS set, -send paces the stream to that bitrate (a live
// encoder's pace; a burst of seconds of media at loopback speed is not
// what live mode is for), and lingers a second before closing so that the
// receiver's latency buffer delivers the tail.
//
// Output: "connected" (exit 0), or "rejected <code> <text>" where code is
// srt_getrejectreason() (exit 2). Other failures exit 1.
#include <srt/srt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <time.h>

int main(int argc, char **argv) {
	int send = 0;
	if (argc > 1 && strcmp(argv[argc - 1], "-send") == 0) {
		send = 1;
		argc--;
	}
	if (argc < 4) {
		fprintf(stderr, "usage: srtcaller HOST PORT STREAMID [PASSPHRASE [PBKEYLEN]] [-send]\n");
		return 1;
	}
	srt_startup();
	srt_setloglevel(1); // LOG_ALERT: keep libsrt's own lines out of the output
	SRTSOCKET s = srt_create_socket();
	int yes = 1;
	srt_setsockflag(s, SRTO_SENDER, &yes, sizeof yes);
	int transtype = SRTT_LIVE;
	srt_setsockflag(s, SRTO_TRANSTYPE, &transtype, sizeof transtype);
	if (srt_setsockflag(s, SRTO_STREAMID, argv[3], strlen(argv[3])) != 0) {
		fprintf(stderr, "streamid: %s\n", srt_getlasterror_str());
		return 1;
	}
	if (argc > 4 && srt_setsockflag(s, SRTO_PASSPHRASE, argv[4], strlen(argv[4])) != 0) {
		fprintf(stderr, "passphrase: %s\n", srt_getlasterror_str());
		return 1;
	}
	if (argc > 5) {
		int len = atoi(argv[5]);
		if (srt_setsockflag(s, SRTO_PBKEYLEN, &len, sizeof len) != 0) {
			fprintf(stderr, "pbkeylen: %s\n", srt_getlasterror_str());
			return 1;
		}
	}
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons(atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
		fprintf(stderr, "bad host %s\n", argv[1]);
		return 1;
	}
	if (srt_connect(s, (struct sockaddr *)&sa, sizeof sa) == SRT_ERROR) {
		int code = srt_getrejectreason(s);
		printf("rejected %d %s\n", code, srt_rejectreason_str(code));
		fflush(stdout);
		srt_close(s);
		srt_cleanup();
		return 2;
	}
	printf("connected\n");
	fflush(stdout);
	if (send) {
		char buf[1316];
		size_t n;
		const char *kbps = getenv("SRTCALLER_KBPS");
		double rate = kbps ? atof(kbps) * 1000 / 8 : 0; // bytes per second
		double sent = 0;
		struct timespec start, now;
		clock_gettime(CLOCK_MONOTONIC, &start);
		while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
			if (srt_sendmsg(s, buf, (int)n, -1, 0) == SRT_ERROR) {
				fprintf(stderr, "send: %s\n", srt_getlasterror_str());
				break;
			}
			sent += n;
			if (rate > 0) {
				clock_gettime(CLOCK_MONOTONIC, &now);
				double elapsed = (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
				double ahead = sent / rate - elapsed;
				if (ahead > 0)
					usleep((useconds_t)(ahead * 1e6));
			}
		}
		if (rate > 0)
			sleep(1);
	}
	srt_close(s);
	srt_cleanup();
	return 0;
}
