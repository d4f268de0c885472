
'use strict';
// A WHIP publisher (RFC 9725): camera and microphone → one sendonly
// RTCPeerConnection → POST of the SDP offer to the WHIP URL with the stream
// key as a bearer token → the answer; Stop DELETEs the session resource.
//
// #status holds exactly one of: idle, connecting, connected, stopped,
// "error: <message>". Tests read it.
//
// The stream key is only ever sent in the Authorization header: it is never
// put in a URL and never stored.
(() => {
  const $ = (id) => document.getElementById(id);
  const form = $('publish-form');
  const urlField = $('whip-url');
  const keyField = $('stream-key');
  const startButton = $('start');
  const stopButton = $('stop');
  const statusLine = $('status');
  const statsLine = $('stats');
  const preview = $('preview');

  const iceGatheringTimeout = 3000; // ms
  const maxErrorText = 300; // characters of a server's refusal shown

  // The session being started or running: {pc, stream, location, key,
  // closed, timer}. null when idle.
  let session = null;
  // ICE servers that the last 201 response announced in Link headers
  // (RFC 9725 section 4.6); they are used from the next attempt on.
  let iceServers = [];

  function setStatus(text) {
    statusLine.textContent = text;
  }

  function setRunning(running) {
    startButton.disabled = running;
    stopButton.disabled = !running;
  }

  function oneLine(text) {
    const s = String(text).replace(/\s+/g, ' ').trim();
    return s.length > maxErrorText ? s.slice(0, maxErrorText) + '…' : s;
  }

  // Prefill from ?url=<WHIP URL> or ?slot=<id> (→ <origin>/whip/<id>).
  const params = new URLSearchParams(window.location.search);
  if (params.get('url')) {
    urlField.value = params.get('url');
  } else if (params.get('slot')) {
    urlField.value = window.location.origin + '/whip/' + encodeURIComponent(params.get('slot'));
  }

  // preferH264 puts the H.264 codecs first on a video transceiver,
  // packetization-mode=1 (non-interleaved, RFC 6184 section 6.3) and
  // constrained baseline first among them; the other codecs follow.
  function preferH264(transceiver) {
    const score = (c) => {
      const fmtp = c.sdpFmtpLine || '';
      let s = 0;
      if (!/packetization-mode=1/.test(fmtp)) s += 2;
      if (!/profile-level-id=42e0/i.test(fmtp)) s += 1;
      return s;
    };
    const order = (codecs) => {
      const h264 = codecs.filter((c) => c.mimeType.toLowerCase() === 'video/h264');
      const others = codecs.filter((c) => c.mimeType.toLowerCase() !== 'video/h264');
      h264.sort((a, b) => score(a) - score(b));
      return { h264, all: h264.concat(others) };
    };
    const send = order((RTCRtpSender.getCapabilities('video') || { codecs: [] }).codecs);
    if (send.h264.length === 0) {
      throw new Error('this browser cannot send H.264');
    }
    try {
      transceiver.setCodecPreferences(send.all);
    } catch (e) {
      // Older browsers check the list against the receiver's capabilities.
      const recv = order((RTCRtpReceiver.getCapabilities('video') || { codecs: [] }).codecs);
      if (recv.h264.length === 0) {
        throw new Error('this browser cannot send H.264');
      }
      transceiver.setCodecPreferences(recv.all);
    }
  }

  // gathered resolves once ICE gathering completed or after ms.
  function gathered(pc, ms) {
    return new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') {
        resolve();
        return;
      }
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        pc.removeEventListener('icegatheringstatechange', check);
        resolve();
      }
      function check() {
        if (pc.iceGatheringState === 'complete') done();
      }
      pc.addEventListener('icegatheringstatechange', check);
    });
  }

  // parseIceServers reads the Link headers of a WHIP response
  // (RFC 9725 section 4.6, RFC 8288): <turn:…>; rel="ice-server";
  // username="…"; credential="…".
  function parseIceServers(header) {
    const servers = [];
    if (!header) return servers;
    const linkRe = /<([^>]*)>((?:\s*;\s*[^;,=\s]+(?:\s*=\s*(?:"[^"]*"|[^;,]*))?)*)/g;
    const paramRe = /;\s*([^;,=\s]+)(?:\s*=\s*(?:"([^"]*)"|([^;,]*)))?/g;
    for (const link of header.matchAll(linkRe)) {
      const p = {};
      for (const m of link[2].matchAll(paramRe)) {
        p[m[1].toLowerCase()] = m[2] !== undefined ? m[2] : (m[3] || '').trim();
      }
      if (!(p.rel || '').split(/\s+/).includes('ice-server')) continue;
      const server = { urls: link[1] };
      if (p.username !== undefined) server.username = p.username;
      if (p.credential !== undefined) server.credential = p.credential;
      servers.push(server);
    }
    return servers;
  }

  function deleteSession(s, keepalive) {
    return fetch(s.location, {
      method: 'DELETE',
      headers: { Authorization: 'Bearer ' + s.key },
      keepalive: keepalive,
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
    });
  }

  // teardown closes the connection and stops the camera and microphone.
  function teardown(s) {
    s.closed = true;
    clearInterval(s.timer);
    if (s.pc) s.pc.close();
    if (s.stream) s.stream.getTracks().forEach((t) => t.stop());
    if (preview.srcObject === s.stream) preview.srcObject = null;
    statsLine.textContent = '';
  }

  // fail ends s with status "error: <message>"; a session the server
  // created is deleted.
  function fail(s, message) {
    if (session !== s) return; // stopped meanwhile: Stop owns the status
    session = null;
    teardown(s);
    setRunning(false);
    setStatus('error: ' + oneLine(message));
    if (s.location) deleteSession(s, false).catch(() => {});
  }

  async function start() {
    if (session) return;
    let endpoint;
    try {
      endpoint = new URL(urlField.value.trim(), window.location.href);
    } catch (e) {
      setStatus('error: the WHIP URL is not valid');
      return;
    }
    if (endpoint.protocol !== 'https:' && endpoint.protocol !== 'http:') {
      setStatus('error: the WHIP URL must be http or https');
      return;
    }
    const s = { pc: null, stream: null, location: null, key: keyField.value, closed: false, timer: 0, lastBytes: 0, lastTime: 0 };
    session = s;
    setRunning(true);
    setStatus('connecting');
    try {
      s.stream = await navigator.mediaDevices.getUserMedia({
        video: { width: 1280, height: 720, frameRate: 30 },
        audio: true,
      });
      if (s.closed) {
        teardown(s);
        return;
      }
      preview.srcObject = s.stream;
      s.pc = new RTCPeerConnection({ iceServers: iceServers });
      for (const track of s.stream.getTracks()) {
        // "detail" makes the browser keep the resolution and give up frame
        // rate or quality when bandwidth is short (mst-content-hint section
        // 3.2); without it Chrome starts at 320x180 and steps up as its
        // bandwidth estimate grows, each step a new SPS mid-stream.
        if (track.kind === 'video' && 'contentHint' in track) track.contentHint = 'detail';
        const tr = s.pc.addTransceiver(track, { direction: 'sendonly', streams: [s.stream] });
        if (track.kind === 'video') preferH264(tr);
      }
      s.pc.addEventListener('connectionstatechange', () => {
        if (session !== s) return;
        switch (s.pc.connectionState) {
          case 'connected':
            setStatus('connected');
            break;
          case 'failed':
            fail(s, 'connection failed');
            break;
        }
      });
      await s.pc.setLocalDescription(await s.pc.createOffer());
      await gathered(s.pc, iceGatheringTimeout);
      if (s.closed) return;
      const resp = await fetch(endpoint.href, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp', Authorization: 'Bearer ' + s.key },
        body: s.pc.localDescription.sdp,
        cache: 'no-store',
        referrerPolicy: 'no-referrer',
      });
      const body = await resp.text();
      if (resp.status !== 201) {
        throw new Error(resp.status + ' ' + (body.trim() || resp.statusText));
      }
      const loc = resp.headers.get('Location');
      if (!loc) {
        throw new Error('the server sent no Location header (a cross-origin server must expose it)');
      }
      s.location = new URL(loc, endpoint).href;
      iceServers = parseIceServers(resp.headers.get('Link'));
      if (s.closed) {
        // Stop was pressed while the offer was on its way.
        deleteSession(s, false).catch(() => {});
        return;
      }
      await s.pc.setRemoteDescription({ type: 'answer', sdp: body });
      s.timer = setInterval(() => showStats(s), 1000);
    } catch (e) {
      fail(s, (e && e.message) || String(e));
    }
  }

  async function stop() {
    const s = session;
    if (!s) return;
    session = null;
    setRunning(false);
    if (!s.location) {
      teardown(s);
      setStatus('stopped');
      return;
    }
    // DELETE before closing the connection: the server ends a session
    // whose connection closed at once, and a DELETE that came after that
    // would find no session (404).
    try {
      const resp = await deleteSession(s, false);
      if (!resp.ok) {
        setStatus('error: ' + oneLine(resp.status + ' ' + ((await resp.text()).trim() || resp.statusText)));
        return;
      }
      setStatus('stopped');
    } catch (e) {
      setStatus('error: ' + oneLine((e && e.message) || String(e)));
    } finally {
      teardown(s);
    }
  }

  // showStats shows the resolution, frame rate and bitrate sent.
  async function showStats(s) {
    if (s.closed || !s.pc) return;
    let report;
    try {
      report = await s.pc.getStats();
    } catch (e) {
      return;
    }
    let bytes = 0;
    let video = null;
    report.forEach((r) => {
      if (r.type !== 'outbound-rtp') return;
      bytes += r.bytesSent || 0;
      if (r.kind === 'video') video = r;
    });
    const now = performance.now();
    const kbps = s.lastTime && bytes >= s.lastBytes ? Math.round((bytes - s.lastBytes) * 8 / (now - s.lastTime)) : 0;
    s.lastBytes = bytes;
    s.lastTime = now;
    if (s.closed) return;
    const parts = [];
    if (video && video.frameWidth) parts.push(video.frameWidth + '×' + video.frameHeight);
    if (video && video.framesPerSecond) parts.push(video.framesPerSecond + ' fps');
    if (kbps) parts.push(kbps + ' kbit/s');
    statsLine.textContent = parts.length ? 'Sending ' + parts.join(', ') : '';
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    start();
  });
  stopButton.addEventListener('click', () => {
    stop();
  });
  // Leaving the page ends the session on the server too; keepalive lets
  // the request outlive the page.
  window.addEventListener('pagehide', () => {
    const s = session;
    if (!s) return;
    session = null;
    if (s.location) deleteSession(s, true).catch(() => {});
    teardown(s);
  });
})();
