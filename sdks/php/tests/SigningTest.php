<?php

declare(strict_types=1);

namespace Durable\Tests;

use Durable\Signature;
use PHPUnit\Framework\TestCase;

/** x-durable-signature: lowercase hex HMAC-SHA256 over the exact bytes, compared in constant time. */
final class SigningTest extends TestCase
{
    public function testSignIsLowercaseHexHmacSha256OfTheExactBytes(): void
    {
        $body = '{"name":"user.created","data":{"id":"u1"}}';
        $this->assertSame('7b793b0a387e3e273e513378c1d4d75ff7f17291579bf56e0a7f9424c34ac167', Signature::sign($body, 'signkey-test-1'));
        $this->assertMatchesRegularExpression('/^[0-9a-f]{64}$/', Signature::sign('', 'k'));
        $this->assertNotSame(Signature::sign($body, 'k'), Signature::sign(str_replace(':', ': ', $body), 'k'), 'whitespace matters');
    }

    public function testVerify(): void
    {
        $signature = Signature::sign('body', 'key');
        $this->assertTrue(Signature::verify('body', 'key', $signature));
        $this->assertTrue(Signature::verify('body', 'key', ' ' . strtoupper($signature) . ' '));
        $this->assertFalse(Signature::verify('body', 'key', null));
        $this->assertFalse(Signature::verify('body', 'key', ''));
        $this->assertFalse(Signature::verify('body!', 'key', $signature));
        $this->assertFalse(Signature::verify('body', 'other', $signature));
        $this->assertFalse(Signature::verify('body', 'key', substr($signature, 0, 63)));
        $this->assertFalse(Signature::verify('body', 'key', 'sha256=' . $signature));
    }

    public function testUnicodeKeysAreUsedAsUtf8Bytes(): void
    {
        $this->assertSame(
            'b857f58725e8a61e26cdf2e11d86f27d3cc8800469ffef3d1fb93cffab7b66fc',
            Signature::sign('{"name":"café","data":{"emoji":"😀"}}', 'kéy-ünicode'),
        );
    }
}
