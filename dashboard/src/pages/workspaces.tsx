import { useState } from "preact/hooks";
import { type App, type CreatedApp, type Environment, type Page, type RotatedKey, api } from "../api";
import {
  ActionButton,
  Button,
  CopyButton,
  Empty,
  EnvBadge,
  ErrorBox,
  Field,
  Link,
  Loading,
  Modal,
  PageHeader,
  Time,
} from "../components/ui";
import type { Resource } from "../hooks";
import { useNow } from "../hooks";
import { navigate } from "../router";
import { House } from "lucide";

export function WorkspacesPage({ apps }: { apps: Resource<Page<App>> }) {
  const [creating, setCreating] = useState(false);
  const [rotated, setRotated] = useState<{ app: App; key: RotatedKey } | null>(null);
  // The workspace whose cap is being edited: the dialog sits outside the table, whose rows navigate on click.
  const [capping, setCapping] = useState<App | null>(null);
  const now = useNow(5000);
  const items = apps.data?.items ?? [];
  const order: Record<string, number> = { prod: 0, acc: 1, dev: 2 };
  const sorted = [...items].sort((a, b) => a.name.localeCompare(b.name) || (order[a.environment] ?? 3) - (order[b.environment] ?? 3));

  return (
    <>
      <PageHeader
        title="Workspaces"
        subtitle="Each workspace is an app × environment: its own functions, events, runs and signing key."
        actions={
          <Button variant="primary" onClick={() => setCreating(true)} testId="new-workspace">
            + New workspace
          </Button>
        }
      />
      {apps.error && !apps.data && <ErrorBox error={apps.error} />}
      {!apps.data && !apps.error && <Loading />}
      {apps.data && items.length === 0 && (
        <div class="card">
          <Empty title="No workspaces yet" icon={House}>
            Create one with <strong>New workspace</strong>, or let your app provision it with <code>POST /api/apps</code>{" "}
            (the SDK examples do this on their first start).
          </Empty>
        </div>
      )}
      {items.length > 0 && (
        <div class="card table-scroll">
          <table class="table" data-testid="workspaces-table">
            <thead>
              <tr>
                <th>Workspace</th>
                <th>Environment</th>
                <th>ID</th>
                <th class="num">Functions</th>
                <th>App URL</th>
                <th>Last sync</th>
                <th title="Runs executing now (over the workspace's cap, if it has one), queued (due now, waiting for a slot) and scheduled (due later: sleeps, wait deadlines, retry backoff, throttled starts)">
                  Runs
                </th>
                <th>Signatures</th>
              </tr>
            </thead>
            <tbody>
              {sorted.map((app) => {
                const href = `/w/${encodeURIComponent(app.id)}/runs`;
                return (
                  <tr key={app.id} class="clickable" onClick={(e) => !(e.target as HTMLElement).closest("a,button") && navigate(href)} data-testid="workspace-row" data-app-id={app.id}>
                    <td>
                      <Link href={href} class="strong">
                        {app.name}
                      </Link>
                    </td>
                    <td>
                      <EnvBadge env={app.environment} />
                    </td>
                    <td class="mono small muted">{app.id}</td>
                    <td class="num">{app.functionCount}</td>
                    <td class="mono small truncate" title={app.url ?? ""}>
                      {app.url ?? <span class="muted">not synced yet</span>}
                    </td>
                    <td class="muted">{app.syncedAt ? <Time iso={app.syncedAt} now={now} /> : "never"}</td>
                    <td data-testid="workspace-load">
                      <LoadCell app={app} onEdit={() => setCapping(app)} />
                    </td>
                    <td class="sig-cell">
                      <SignatureModeSwitch app={app} onChanged={() => apps.reload()} />
                      <KeyActions
                        app={app}
                        onRotated={(key) => {
                          setRotated({ app, key });
                          apps.reload();
                        }}
                        onRemoved={() => apps.reload()}
                      />
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
      {capping && <CapModal app={capping} onClose={() => setCapping(null)} onChanged={() => apps.reload()} />}
      {rotated && <RotatedKeyModal app={rotated.app} rotated={rotated.key} onClose={() => setRotated(null)} />}
      {creating && (
        <NewWorkspace
          onClose={() => setCreating(false)}
          onCreated={() => apps.reload()}
        />
      )}
    </>
  );
}

/** A load count: the API counts queued and scheduled runs up to 10,001, so more shows as 10,000+. */
function count(value: number | undefined): string {
  const n = value ?? 0;
  return n > 10_000 ? "10,000+" : n.toLocaleString();
}

/**
 * What the workspace runs now: executing (over its cap when it has one), queued and scheduled, and the
 * control that sets the cap: the most runs of this workspace executing at once, across every worker
 * (none: the workspace still shares the workers fairly with the others).
 */
function LoadCell({ app, onEdit }: { app: App; onEdit: () => void }) {
  const cap = app.maxConcurrency ?? null;
  return (
    <div class="load-cell" data-cap={cap ?? ""}>
      <span title={cap === null ? "No cap: the workspace shares the workers fairly" : `At most ${cap} at once`}>
        <strong data-testid="workspace-executing">
          {count(app.executing)}
          {cap !== null && ` / ${cap.toLocaleString()}`}
        </strong>{" "}
        executing
      </span>
      <span class="muted small">
        <span data-testid="workspace-queued">{count(app.queued)}</span> queued ·{" "}
        <span data-testid="workspace-scheduled">{count(app.scheduled)}</span> scheduled
      </span>
      <Button size="sm" variant="ghost" testId="edit-cap" onClick={onEdit}>
        {cap === null ? "Set cap" : "Change cap"}
      </Button>
    </div>
  );
}

function CapModal({ app, onClose, onChanged }: { app: App; onClose: () => void; onChanged: () => void }) {
  const [value, setValue] = useState(app.maxConcurrency ? String(app.maxConcurrency) : "");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const save = async (cap: number | null) => {
    setBusy(true);
    setError(null);
    try {
      await api.setMaxConcurrency(app.id, cap);
      onChanged();
      onClose();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const submit = (event: Event) => {
    event.preventDefault();
    const cap = Number(value.trim());
    if (!/^\d+$/.test(value.trim()) || cap < 1) {
      setError("Give a whole number of runs, 1 or more, or remove the cap.");
      return;
    }
    void save(cap);
  };

  return (
    <Modal
      title="Cap on runs executing at once"
      onClose={onClose}
      testId="cap-modal"
      footer={
        <>
          {app.maxConcurrency != null && (
            <Button variant="ghost" busy={busy} onClick={() => save(null)} testId="remove-cap">
              Remove cap
            </Button>
          )}
          <Button variant="primary" busy={busy} onClick={submit} testId="save-cap">
            Save
          </Button>
        </>
      }
    >
      <div class="created-head">
        <strong>{app.name}</strong> <EnvBadge env={app.environment} />
      </div>
      <form onSubmit={submit} class="form">
        <Field
          label="Most runs executing at once"
          hint="Counted across every engine and worker process. Without a cap the workspace still shares the workers fairly with the others."
        >
          <input
            class="input"
            inputMode="numeric"
            value={value}
            autofocus
            placeholder="no cap"
            data-testid="cap-input"
            onInput={(e) => setValue((e.target as HTMLInputElement).value)}
          />
        </Field>
        <ErrorBox error={error ?? undefined} />
      </form>
    </Modal>
  );
}

/**
 * The workspace's signature mode: v2 (only v2 signatures: fresh, single-use, bound to their request) or
 * compat (the seed's v1 accepted too). A switch; in prod it needs the confirming second click.
 */
function SignatureModeSwitch({ app, onChanged }: { app: App; onChanged: () => void }) {
  const mode = app.signatureMode ?? "v2";
  const next = mode === "v2" ? "compat" : "v2";
  return (
    <div class="sig-mode" data-testid="signature-mode" data-mode={mode}>
      <span class={`sig-mode-label sig-mode-${mode}`} title={mode === "v2" ? "Only v2 signatures are accepted" : "v1 signatures are accepted too (replayable)"}>
        {mode === "v2" ? "v2 only" : "compat (v1 + v2)"}
      </span>
      <ActionButton
        guarded={app.environment === "prod"}
        size="sm"
        variant="ghost"
        testId="switch-signature-mode"
        title={`Switch to ${next === "v2" ? "v2 only" : "compat: v1 accepted too"}`}
        onAction={async () => {
          await api.setSignatureMode(app.id, next);
          onChanged();
        }}
      >
        {next === "v2" ? "Require v2" : "Allow v1"}
      </ActionButton>
    </div>
  );
}

/** Rotate the signing key (the new one is shown once), and remove the previous key when apps moved. */
function KeyActions({ app, onRotated, onRemoved }: { app: App; onRotated: (key: RotatedKey) => void; onRemoved: () => void }) {
  const guarded = app.environment === "prod";
  if (app.rotating) {
    return (
      <div class="key-actions">
        <span class="muted small" title="Both keys are accepted; the engine signs with the previous one until it is removed">
          key rotating:
        </span>
        <ActionButton
          guarded={guarded}
          size="sm"
          testId="remove-previous-key"
          title="The previous key stops working and the engine signs with the new one"
          onAction={async () => {
            await api.removePreviousKey(app.id);
            onRemoved();
          }}
        >
          Remove previous key
        </ActionButton>
      </div>
    );
  }
  return (
    <div class="key-actions">
      <ActionButton guarded={guarded} size="sm" testId="rotate-key" onAction={async () => onRotated(await api.rotateKey(app.id))}>
        Rotate key
      </ActionButton>
    </div>
  );
}

function RotatedKeyModal({ app, rotated, onClose }: { app: App; rotated: RotatedKey; onClose: () => void }) {
  return (
    <Modal
      title="New signing key"
      onClose={onClose}
      testId="key-rotated"
      footer={
        <Button variant="primary" onClick={onClose} testId="rotated-done">
          Done
        </Button>
      }
    >
      <div class="created-head">
        <strong>{app.name}</strong> <EnvBadge env={app.environment} />
      </div>
      <div class="notice notice-warn">
        Copy the new key now: this is the only time the dashboard shows it. Both keys are accepted and the engine keeps
        signing with the previous one until you remove it, so deploy the new key (with the old one as a fallback) first.
      </div>
      <div class="secret-row">
        <div class="secret-label">Signing key</div>
        <code class="secret-value" data-testid="rotated-key">
          {rotated.signingKey}
        </code>
        <CopyButton text={rotated.signingKey} testId="copy-rotated-key" />
      </div>
    </Modal>
  );
}

const ENVIRONMENTS: { value: Environment; label: string; hint: string }[] = [
  { value: "dev", label: "dev", hint: "Local development" },
  { value: "acc", label: "acc", hint: "Acceptance / staging" },
  { value: "prod", label: "prod", hint: "Production: actions need two clicks" },
];

function NewWorkspace({ onClose, onCreated }: { onClose: () => void; onCreated: () => void }) {
  const [name, setName] = useState("");
  const [environment, setEnvironment] = useState<Environment>("dev");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [created, setCreated] = useState<CreatedApp | null>(null);

  const submit = async (event: Event) => {
    event.preventDefault();
    if (!name.trim()) {
      setError("Give the workspace a name, like billing or shop-api.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const result = await api.createApp(name.trim(), environment);
      setCreated(result);
      onCreated();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };

  if (created) {
    const env = `DURABLE_APP_ID=${created.id}\nDURABLE_SIGNING_KEY=${created.signingKey}`;
    return (
      <Modal
        title="Workspace created"
        onClose={onClose}
        testId="workspace-created"
        footer={
          <>
            <Button onClick={() => navigate(`/w/${encodeURIComponent(created.id)}/runs`)}>Open workspace</Button>
            <Button variant="primary" onClick={onClose} testId="created-done">
              Done
            </Button>
          </>
        }
      >
        <div class="created-head">
          <strong>{created.name}</strong> <EnvBadge env={created.environment} />
        </div>
        <div class="notice notice-warn">
          Copy the signing key now: this is the only time the dashboard shows it. Your app signs every call with it.
        </div>
        <div class="secret-row">
          <div class="secret-label">App ID</div>
          <code class="secret-value" data-testid="created-id">
            {created.id}
          </code>
          <CopyButton text={created.id} testId="copy-id" />
        </div>
        <div class="secret-row">
          <div class="secret-label">Signing key</div>
          <code class="secret-value" data-testid="created-key">
            {created.signingKey}
          </code>
          <CopyButton text={created.signingKey} testId="copy-key" />
        </div>
        <div class="secret-row">
          <div class="secret-label">Environment</div>
          <pre class="secret-value code-block">{env}</pre>
          <CopyButton text={env} label="Copy both" />
        </div>
      </Modal>
    );
  }

  return (
    <Modal
      title="New workspace"
      onClose={onClose}
      testId="new-workspace-modal"
      footer={
        <>
          <Button variant="ghost" onClick={onClose}>
            Cancel
          </Button>
          <Button variant="primary" busy={busy} onClick={submit} testId="create-workspace">
            Create workspace
          </Button>
        </>
      }
    >
      <form onSubmit={submit} class="form">
        <Field label="Name" hint="Your app's name. The same name in another environment is another workspace.">
          <input
            class="input"
            value={name}
            autofocus
            placeholder="billing"
            data-testid="workspace-name"
            onInput={(e) => setName((e.target as HTMLInputElement).value)}
          />
        </Field>
        <div class="field">
          <span class="field-label">Environment</span>
          <div class="env-choice" role="radiogroup">
            {ENVIRONMENTS.map((option) => (
              <button
                type="button"
                key={option.value}
                role="radio"
                aria-checked={environment === option.value}
                class={`env-option env-option-${option.value} ${environment === option.value ? "is-active" : ""}`}
                onClick={() => setEnvironment(option.value)}
                data-testid={`env-${option.value}`}
              >
                <EnvBadge env={option.value} size="sm" />
                <span class="env-option-hint">{option.hint}</span>
              </button>
            ))}
          </div>
        </div>
        <ErrorBox error={error ?? undefined} />
      </form>
    </Modal>
  );
}
