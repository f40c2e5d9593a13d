// One EventSource to /api/stream for the whole page. Screens subscribe with `useLiveRefresh` (hooks.ts):
// a relevant `change` schedules a refetch; every (re)connect refetches at once, which is the catch-up
// after a dropped connection or an engine restart (messages sent while we were away are not replayed).

export type LiveState = "connecting" | "live" | "reconnecting" | "off";

export interface Change {
  appId: string;
  kinds: string[];
  runIds?: string[] | null;
}

interface Subscriber {
  change(change: Change): void;
  connected(): void;
}

const RETRY_MS = [250, 500, 1000, 2000, 3000];

class LiveStream {
  state: LiveState = "off";
  private source: EventSource | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private failures = 0;
  private opened = false;
  private subscribers = new Set<Subscriber>();
  private stateListeners = new Set<(state: LiveState) => void>();
  /** Told of every failed connection (the app re-checks the session: a 401 looks like a failure). */
  onFailure: (() => void) | null = null;

  start(): void {
    if (this.source || this.timer) return;
    this.connect();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.source?.close();
    this.source = null;
    this.opened = false;
    this.failures = 0;
    this.setState("off");
  }

  subscribe(subscriber: Subscriber): () => void {
    this.subscribers.add(subscriber);
    return () => this.subscribers.delete(subscriber);
  }

  /** Tell this page's screens of a change it made itself (at once, without waiting for the stream). */
  local(change: Change): void {
    for (const subscriber of [...this.subscribers]) subscriber.change(change);
  }

  watchState(listener: (state: LiveState) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  private setState(state: LiveState): void {
    if (state === this.state) return;
    this.state = state;
    for (const listener of [...this.stateListeners]) listener(state);
  }

  private connect(): void {
    this.timer = null;
    this.setState(this.opened ? "reconnecting" : "connecting");
    const source = new EventSource("/api/stream");
    this.source = source;
    source.onopen = () => {
      this.failures = 0;
      this.opened = true;
      this.setState("live");
      for (const subscriber of [...this.subscribers]) subscriber.connected();
    };
    source.addEventListener("change", (message: MessageEvent<string>) => {
      let change: Change;
      try {
        change = JSON.parse(message.data) as Change;
      } catch {
        return;
      }
      if (!change || typeof change.appId !== "string" || !Array.isArray(change.kinds)) return;
      for (const subscriber of [...this.subscribers]) subscriber.change(change);
    });
    source.onerror = () => {
      // We reconnect ourselves (EventSource gives up for good on an HTTP error such as a 401 or 502).
      source.close();
      if (this.source !== source) return;
      this.source = null;
      this.setState(this.opened ? "reconnecting" : "connecting");
      const delay = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
      this.failures += 1;
      this.timer = setTimeout(() => this.connect(), delay);
      this.onFailure?.();
    };
  }
}

export const live = new LiveStream();
