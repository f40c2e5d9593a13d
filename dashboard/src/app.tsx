import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { type App as Workspace, type Session, api, onUnauthorized } from "./api";
import { Logo } from "./components/logo";
import { EnvBadge, Link, Loading, PauseIcon, Toasts, toast } from "./components/ui";
import { changeTouches, useLiveRefresh, useLiveState, useResource } from "./hooks";
import { live } from "./live";
import { navigate, useLocation } from "./router";
import { EventsPage } from "./pages/events";
import { FunctionsPage } from "./pages/functions";
import { MetricsPage } from "./pages/metrics";
import { RunDrawer } from "./pages/run";
import { RunsPage } from "./pages/runs";
import { SignIn } from "./pages/signin";
import { WorkspacesPage } from "./pages/workspaces";
import { BookOpen, ChartColumn, House, Play, SquareFunction, Zap } from "lucide";
import { Icon } from "./components/icon";

const SECTIONS = [
  { key: "runs", label: "Runs", icon: Play },
  { key: "events", label: "Events", icon: Zap },
  { key: "functions", label: "Functions", icon: SquareFunction },
  { key: "metrics", label: "Metrics", icon: ChartColumn },
] as const;
type Section = (typeof SECTIONS)[number]["key"];

export function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [sessionError, setSessionError] = useState<string | null>(null);

  const checkSession = useCallback(async () => {
    try {
      const next = await api.session();
      setSession(next);
      setSessionError(null);
    } catch (error) {
      const e = error as { status?: number; message: string };
      // An engine without /api/session is an open one.
      if (e.status === 404) setSession({ authRequired: false, signedIn: true });
      else setSessionError(e.message);
    }
  }, []);

  useEffect(() => {
    void checkSession();
    onUnauthorized(() => setSession({ authRequired: true, signedIn: false }));
    return () => onUnauthorized(null);
  }, []);

  const allowed = session !== null && (!session.authRequired || session.signedIn);

  useEffect(() => {
    if (!allowed) {
      live.stop();
      return;
    }
    live.onFailure = session?.authRequired ? () => void checkSession() : null;
    live.start();
  }, [allowed, session?.authRequired]);

  if (session === null) {
    return (
      <div class="boot">
        {sessionError ? (
          <div class="boot-card">
            <Logo />
            <p>{sessionError}</p>
            <button class="btn btn-primary btn-md" onClick={() => void checkSession()}>
              Retry
            </button>
          </div>
        ) : (
          <div class="spinner spinner-lg" />
        )}
      </div>
    );
  }
  if (!allowed) {
    return (
      <>
        <SignIn onSignedIn={() => void checkSession()} />
        <Toasts />
      </>
    );
  }
  const signOut = session.authRequired
    ? async () => {
        try {
          await api.logout();
        } catch {
          /* the cookie is cleared either way on the next 401 */
        }
        live.stop();
        setSession({ authRequired: true, signedIn: false });
        toast("Signed out");
      }
    : null;
  return <Shell signOut={signOut} />;
}

function Shell({ signOut }: { signOut: (() => Promise<void>) | null }) {
  const { path, query } = useLocation();
  const apps = useResource(() => api.apps(), []);
  useLiveRefresh((c) => c.kinds.includes("apps") || c.kinds.includes("functions"), apps.reload, 300);

  const match = /^\/w\/([^/]+)(?:\/([a-z]+))?\/?$/.exec(path);
  const appId = match ? decodeURIComponent(match[1]) : null;
  const section = (match?.[2] ?? null) as Section | null;
  const workspace = appId ? apps.data?.items.find((a) => a.id === appId) : undefined;
  const runId = query.get("run");

  useEffect(() => {
    if (appId && !section) navigate(`/w/${encodeURIComponent(appId)}/runs`, { replace: true });
  }, [appId, section]);

  useEffect(() => {
    const name = workspace ? `${workspace.name} (${workspace.environment})` : null;
    const part = section ? SECTIONS.find((s) => s.key === section)?.label : appId ? null : "Workspaces";
    document.title = ["Durable", name, part].filter(Boolean).join(" · ");
  }, [workspace?.id, section, appId]);

  let page: ComponentChildren;
  if (path === "/" || path === "") {
    page = <WorkspacesPage apps={apps} />;
  } else if (appId && !apps.data && !apps.error) {
    page = <Loading />;
  } else if (appId && !workspace) {
    page = (
      <div class="card pad">
        <h2>No workspace {appId}</h2>
        <p class="muted">
          It may have been removed, or the link is wrong. <Link href="/">Back to workspaces</Link>
        </p>
      </div>
    );
  } else if (workspace && section) {
    const props = { app: workspace };
    page =
      section === "runs" ? (
        <RunsPage {...props} />
      ) : section === "events" ? (
        <EventsPage {...props} />
      ) : section === "functions" ? (
        <FunctionsPage {...props} />
      ) : section === "metrics" ? (
        <MetricsPage {...props} />
      ) : (
        <NotFound />
      );
  } else {
    page = <NotFound />;
  }

  const prod = workspace?.environment === "prod";
  return (
    <div class={`shell ${prod ? "is-prod" : ""}`}>
      <aside class="sidebar">
        <Link href="/" class="brand">
          <Logo />
        </Link>
        <nav class="nav">
          <Link href="/" class={`nav-item ${path === "/" ? "is-active" : ""}`} testId="nav-workspaces">
            <span class="nav-icon">
              <Icon icon={House} />
            </span>
            Workspaces
          </Link>
          {workspace && (
            <div class="nav-group">
              <div class="nav-workspace" title={workspace.id}>
                <span class="nav-workspace-name">{workspace.name}</span>
                <EnvBadge env={workspace.environment} size="sm" />
              </div>
              {SECTIONS.map((s) => (
                <Link
                  key={s.key}
                  href={`/w/${encodeURIComponent(workspace.id)}/${s.key}`}
                  class={`nav-item ${section === s.key ? "is-active" : ""}`}
                  testId={`nav-${s.key}`}
                >
                  <span class="nav-icon">
                    <Icon icon={s.icon} />
                  </span>
                  {s.label}
                </Link>
              ))}
            </div>
          )}
        </nav>
        <div class="sidebar-foot">
          {/* A full page load: the docs page is served by the engine, outside this app's router. */}
          <a href="/api/docs" class="nav-item" data-testid="nav-api-docs" target="_blank" rel="noopener">
            <span class="nav-icon">
              <Icon icon={BookOpen} />
            </span>
            API docs
          </a>
          <LiveIndicator />
          {signOut && (
            <button type="button" class="btn btn-ghost btn-sm sign-out" onClick={() => void signOut()} data-testid="sign-out">
              Sign out
            </button>
          )}
        </div>
      </aside>
      <main class="main">
        {prod && (
          <div class="prod-banner" data-testid="prod-banner">
            <strong>PRODUCTION</strong> — live data. Every action asks for a confirming second click.
          </div>
        )}
        <div class="topbar">
          <nav class="crumbs">
            <Link href="/">Workspaces</Link>
            {workspace && (
              <>
                <span class="crumb-sep">/</span>
                <Link href={`/w/${encodeURIComponent(workspace.id)}/runs`}>{workspace.name}</Link>
                <EnvBadge env={workspace.environment} />
                {section && (
                  <>
                    <span class="crumb-sep">/</span>
                    <span class="crumb-current">{SECTIONS.find((s) => s.key === section)?.label}</span>
                  </>
                )}
              </>
            )}
          </nav>
        </div>
        {workspace && <PausedBanner app={workspace} onFunctions={section === "functions"} />}
        <div class="content">{page}</div>
      </main>
      {workspace && runId && <RunDrawer runId={runId} app={workspace} />}
      <Toasts />
    </div>
  );
}

/** Loud on every screen of a workspace while any of its functions is paused. */
function PausedBanner({ app, onFunctions }: { app: Workspace; onFunctions: boolean }) {
  const functions = useResource(() => api.functions(app.id), [app.id]);
  useLiveRefresh((c) => changeTouches(c, app.id, ["functions", "apps"]), functions.reload);
  const paused = (functions.data?.items ?? []).filter((f) => f.paused);
  if (paused.length === 0) return null;
  return (
    <div class="paused-banner" role="status" data-testid="paused-banner" data-count={paused.length}>
      <PauseIcon />
      <strong>
        {paused.length === 1 ? "1 function is paused" : `${paused.length} functions are paused`}:
      </strong>{" "}
      {paused.map((f, i) => (
        <span key={f.id}>
          {i > 0 && ", "}
          <span class="mono">{f.id}</span> ({f.paused!.mode === "skip" ? "skipping new events" : "queueing new runs"})
        </span>
      ))}
      {!onFunctions && (
        <>
          {" · "}
          <Link href={`/w/${encodeURIComponent(app.id)}/functions`}>Resume on Functions</Link>
        </>
      )}
    </div>
  );
}

function NotFound() {
  return (
    <div class="card pad">
      <h2>Page not found</h2>
      <p class="muted">
        <Link href="/">Go to workspaces</Link>
      </p>
    </div>
  );
}

function LiveIndicator() {
  const state = useLiveState();
  const label = state === "live" ? "Live" : state === "reconnecting" ? "Reconnecting…" : state === "connecting" ? "Connecting…" : "Offline";
  const title =
    state === "live"
      ? "Connected: screens update as data changes"
      : "Not connected to the engine's change stream; retrying. Screens refresh when it is back.";
  return (
    <div class={`live live-${state}`} title={title} data-testid="live-indicator" data-state={state}>
      <span class="live-dot" />
      {label}
    </div>
  );
}
