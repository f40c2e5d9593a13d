export function Logo() {
  return (
    <span class="logo">
      <svg viewBox="0 0 32 32" width="26" height="26" aria-hidden="true">
        <rect width="32" height="32" rx="8" fill="#4f46e5" />
        <path d="M9 8h7a8 8 0 0 1 0 16H9z" fill="none" stroke="#fff" stroke-width="3.2" stroke-linejoin="round" />
        <circle cx="16" cy="16" r="2.6" fill="#34d399" />
      </svg>
      <span class="logo-text">Durable</span>
    </span>
  );
}
