<?php

declare(strict_types=1);

// Without Composer: `require __DIR__ . '/path/to/sdks/php/autoload.php';` maps Durable\X to src/X.php.
spl_autoload_register(static function (string $class): void {
    if (str_starts_with($class, 'Durable\\')) {
        $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, 8)) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
