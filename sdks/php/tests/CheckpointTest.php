<?php

declare(strict_types=1);

namespace Durable\Tests;

use Durable\DurableFunction;
use Durable\Json;
use Durable\MemoryNonceStore;
use Durable\Serve;
use Durable\SignatureV2;
use Durable\Step;
use PHPUnit\Framework\TestCase;

/** Checkpointing beyond the shared vectors (docs/protocol.md, "Checkpointing"): the option, the bounds, the round trip. */
final class CheckpointTest extends TestCase
{
    private const NOW = 1767225600123;

    /** @param bool|array<string, int> $checkpoint */
    private static function define(callable $handler, bool|array $checkpoint = true, ?callable $onFailure = null): DurableFunction
    {
        return new DurableFunction(id: 'f', trigger: ['event' => 'demo.test'], handler: $handler, onFailure: $onFailure, checkpoint: $checkpoint);
    }

    /**
     * The raw answer body to one signed invoke, with $monotonic as the checkpoint's clock.
     *
     * @param array<string, mixed>|\stdClass $steps
     */
    private static function answer(DurableFunction $function, array|\stdClass $steps = new \stdClass(), ?callable $monotonic = null): string
    {
        $body = Support::body('f', new \stdClass(), $steps);
        $nonce = SignatureV2::nonce();
        $response = Serve::dispatch([$function], Support::KEY, $body, Support::invokeHeaders($body, self::NOW, $nonce), clock: fn () => self::NOW, nonceStore: new MemoryNonceStore(), monotonic: $monotonic);
        self::assertSame(200, $response['status'], $response['body']);
        Support::assertSignedAnswer($response, $nonce, self::NOW);
        return $response['body'];
    }

    /**
     * @param array<string, mixed>|\stdClass $steps
     * @return array<string, mixed>
     */
    private static function op(DurableFunction $function, array|\stdClass $steps = new \stdClass(), ?callable $monotonic = null): array
    {
        return json_decode(self::answer($function, $steps, $monotonic), true, 512, JSON_THROW_ON_ERROR);
    }

    /**
     * Play the engine for a run of $function: store what each answer carries, invoke again, until `done`.
     *
     * @return list<array<string, mixed>> the answers, in order
     */
    private static function runToCompletion(DurableFunction $function): array
    {
        $steps = [];
        $answers = [];
        while (count($answers) < 50) {
            $answers[] = $op = self::op($function, $steps === [] ? new \stdClass() : $steps);
            $stored = match ($op['op']) {
                'step' => [$op],
                'checkpoint' => [...$op['steps'], ...($op['then'] === null ? [] : [$op['then']])],
                default => [$op],
            };
            foreach ($stored as $item) {
                if (($item['op'] ?? 'step') === 'done') {
                    return $answers;
                }
                self::assertNotSame('error', $item['op'] ?? 'step', json_encode($item));
                $steps[$item['id']] = ['type' => ($item['op'] ?? 'step') === 'sleep' ? 'sleep' : 'run', 'data' => $item['data'] ?? null];
            }
        }
        self::fail('the run did not end within 50 invokes');
    }

    /** @return \Closure(array, Step): mixed a handler of $n steps, each returning its index; the step calls are counted */
    private static function steps(int $n, int &$calls): \Closure
    {
        return function (array $event, Step $step) use ($n, &$calls) {
            $out = [];
            for ($i = 0; $i < $n; $i++) {
                $out[] = $step->run("s$i", function () use ($i, &$calls) {
                    $calls++;
                    return $i;
                });
            }
            return $out;
        };
    }

    public function testCheckpointingIsOnByDefault(): void
    {
        $calls = 0;
        $function = new DurableFunction(id: 'f', trigger: ['event' => 'demo.test'], handler: self::steps(20, $calls));
        $this->assertSame(['maxSteps' => 100, 'maxBytes' => 1048576, 'maxMs' => 1000], $function->checkpoint);
        $answers = self::runToCompletion($function);
        $this->assertCount(1, $answers, 'a 20-step run is one invoke');
        $this->assertSame('checkpoint', $answers[0]['op']);
        $this->assertSame(array_map(fn (int $i) => ['id' => "s$i", 'data' => $i], range(0, 19)), $answers[0]['steps']);
        $this->assertSame(['op' => 'done', 'data' => range(0, 19)], $answers[0]['then']);
        $this->assertSame(20, $calls);
    }

    public function testCheckpointFalseAnswersOneStepPerInvoke(): void
    {
        $calls = 0;
        $function = self::define(self::steps(5, $calls), checkpoint: false);
        $this->assertNull($function->checkpoint);
        $answers = self::runToCompletion($function);
        $this->assertSame(
            [...array_map(fn (int $i) => ['op' => 'step', 'id' => "s$i", 'data' => $i], range(0, 4)), ['op' => 'done', 'data' => range(0, 4)]],
            $answers,
        );
        $this->assertSame(5, $calls, 'each step executed once, in its own invoke');
    }

    public function testMaxStepsSplitsARunIntoInvokesOfAtMostThatManySteps(): void
    {
        $calls = 0;
        $answers = self::runToCompletion(self::define(self::steps(7, $calls), ['maxSteps' => 3]));
        $this->assertSame([3, 3, 1], array_map(fn (array $op) => count($op['steps']), $answers));
        $this->assertSame([null, null, ['op' => 'done', 'data' => range(0, 6)]], array_column($answers, 'then'));
        $this->assertSame(7, $calls);
    }

    public function testMaxMsCountsMonotonicTimeSinceTheInvokeArrived(): void
    {
        $now = 0.0; // a fake monotonic clock: each step takes 300 ms of it
        $handler = function (array $event, Step $step) use (&$now) {
            for ($i = 0; $i < 10; $i++) {
                $step->run("s$i", function () use (&$now) {
                    $now += 300;
                    return 1;
                });
            }
            return 'all';
        };
        $clock = function () use (&$now) {
            return $now;
        };
        $op = self::op(self::define($handler), monotonic: $clock);
        $this->assertCount(4, $op['steps'], 'after 4 steps 1200 ms have passed, the default maxMs is 1000');
        $this->assertNull($op['then']);
        $now = 0.0;
        $op = self::op(self::define($handler, ['maxMs' => 600]), monotonic: $clock);
        $this->assertCount(2, $op['steps']);
        $now = 0.0;
        $op = self::op(self::define($handler, ['maxMs' => 5000]), monotonic: $clock);
        $this->assertSame(['op' => 'done', 'data' => 'all'], $op['then'], '10 steps of 300 ms fit in 5 s');
    }

    public function testMaxMsIncludesTimeSpentBeforeTheFirstStep(): void
    {
        $now = 0.0;
        $handler = function (array $event, Step $step) use (&$now) {
            $now += 999; // the handler's own work before its steps
            $step->run('a', fn () => 1);
            $now += 1;
            $step->run('b', fn () => 2);
            return $step->run('c', fn () => 3);
        };
        $op = self::op(self::define($handler), monotonic: function () use (&$now) {
            return $now;
        });
        $this->assertSame(['op' => 'checkpoint', 'steps' => [['id' => 'a', 'data' => 1], ['id' => 'b', 'data' => 2]], 'then' => null], $op);
    }

    public function testMaxMsWithTheRealClock(): void
    {
        $handler = function (array $event, Step $step) {
            foreach (['a', 'b', 'c'] as $id) {
                $step->run($id, function () use ($id) {
                    usleep(3000); // past maxMs 2 after the first step, whatever the machine's speed
                    return $id;
                });
            }
            return 'unreachable in one invoke';
        };
        $this->assertSame(['op' => 'step', 'id' => 'a', 'data' => 'a'], self::op(self::define($handler, ['maxMs' => 2])));
    }

    public function testMaxBytesCountsTheUtf8LengthOfEachResultsJson(): void
    {
        $big = str_repeat('x', 400_000); // JSON: 400002 bytes; three pass the default 1 MiB
        $calls = 0;
        $handler = function (array $event, Step $step) use ($big, &$calls) {
            for ($i = 0; $i < 5; $i++) {
                $step->run("big$i", function () use ($big, &$calls) {
                    $calls++;
                    return $big;
                });
            }
            return 'all';
        };
        $op = self::op(self::define($handler));
        $this->assertSame(['big0', 'big1', 'big2'], array_column($op['steps'], 'id'));
        $this->assertSame($big, $op['steps'][2]['data']);
        $this->assertNull($op['then']);
        $this->assertSame(3, $calls);
        // '☃☃' is 2 characters, 8 bytes of JSON ("☃☃" unescaped): 16 bytes are reached after 2 steps, not 4.
        $snowmen = function (array $event, Step $step) {
            for ($i = 0; $i < 6; $i++) {
                $step->run("s$i", fn () => '☃☃');
            }
            return 'all';
        };
        $this->assertCount(2, self::op(self::define($snowmen, ['maxBytes' => 16]))['steps']);
        $this->assertCount(3, self::op(self::define($snowmen, ['maxBytes' => 17]))['steps']);
    }

    public function testTheCodeAfterAStepSeesItsJsonRoundTrip(): void
    {
        $point = new class () implements \JsonSerializable {
            public function jsonSerialize(): mixed
            {
                return ['x' => 1.0, 'y' => -2];
            }
        };
        $values = [
            'serializable' => $point,                                        // → ['x' => 1, 'y' => -2]
            'object' => (object) ['a' => (object) [], 'b' => [3 => 'c']],   // → ['a' => [], 'b' => [3 => 'c']]
            'float' => 2.0,                                                  // → 2 (an int, as a replay gives it)
        ];
        $seen = [];
        $handler = function (array $event, Step $step) use ($values, &$seen) {
            foreach ($values as $id => $value) {
                $seen[$id] = $step->run($id, fn () => $value);
            }
            return array_map(fn ($value) => get_debug_type($value), $seen);
        };
        $body = self::answer(self::define($handler));
        $expected = ['serializable' => ['x' => 1, 'y' => -2], 'object' => ['a' => [], 'b' => [3 => 'c']], 'float' => 2];
        $this->assertSame($expected, $seen);
        $this->assertSame(
            '{"op":"checkpoint","steps":[{"id":"serializable","data":{"x":1,"y":-2}},{"id":"object","data":{"a":{},"b":{"3":"c"}}},{"id":"float","data":2}],'
            . '"then":{"op":"done","data":{"serializable":"array","object":"array","float":"int"}}}',
            $body,
            'the answer carries each value as encoded ({} stays {}); only the handler sees the round trip',
        );
        // And a replay of those stored steps gives the handler the very same values.
        $stored = [];
        foreach (json_decode($body, false, 512, JSON_THROW_ON_ERROR)->steps as $item) {
            $stored[$item->id] = ['type' => 'run', 'data' => $item->data];
        }
        $replayed = $seen;
        $seen = [];
        $this->assertSame('done', self::op(self::define($handler), $stored)['op']);
        $this->assertSame($replayed, $seen);
    }

    public function testTheAnswerCarriesAResultAsItWasWhenTheStepReturned(): void
    {
        $handler = function (array $event, Step $step) {
            $order = (object) ['status' => 'new', 'lines' => new \stdClass()];
            $step->run('a', fn () => $order);
            $order->status = 'changed by the handler'; // after the step: not what the step returned
            $step->run('b', fn () => ["\0key" => 'a key PHP objects cannot hold']);
            return $step->run('c', fn () => $order);
        };
        $this->assertSame(
            '{"op":"checkpoint","steps":[{"id":"a","data":{"status":"new","lines":{}}},{"id":"b","data":{"\\u0000key":"a key PHP objects cannot hold"}},'
            . '{"id":"c","data":{"status":"changed by the handler","lines":{}}}],"then":{"op":"done","data":{"status":"changed by the handler","lines":[]}}}',
            self::answer(self::define($handler)),
        );
    }

    public function testAStepThatReturnsNonJsonAfterACheckpointedOneIsTheThen(): void
    {
        $handler = function (array $event, Step $step) {
            $step->run('ok', fn () => 1);
            return $step->run('bad', fn () => NAN);
        };
        $op = self::op(self::define($handler));
        $this->assertSame([['id' => 'ok', 'data' => 1]], $op['steps']);
        $this->assertSame('bad', $op['then']['id']);
        $this->assertStringStartsWith("step 'bad' returned a value that is not JSON-serialisable: ", $op['then']['message']);
        $this->assertFalse($op['then']['retryable']);
    }

    public function testAParallelGroupOfOneRunStepJoinsTheStepsWithThenNull(): void
    {
        // `then` is never a step op: a group that resolves to one run step is a step of the checkpoint.
        $handler = function (array $event, Step $step) {
            $a = $step->run('a', fn () => 1);
            [$b, $c] = $step->parallel([fn () => $step->run('b', fn () => 2), fn () => $step->run('c', fn () => 3)]);
            return $a + $b + $c;
        };
        $op = self::op(self::define($handler), ['b' => ['type' => 'run', 'data' => 2]]);
        $this->assertSame(['op' => 'checkpoint', 'steps' => [['id' => 'a', 'data' => 1], ['id' => 'c', 'data' => 3]], 'then' => null], $op);
        $this->assertSame(['op' => 'step', 'id' => 'c', 'data' => 3], self::op(self::define($handler), ['a' => ['type' => 'run', 'data' => 1], 'b' => ['type' => 'run', 'data' => 2]]));
    }

    public function testSwallowedInterruptsDoNotExtendTheCheckpoint(): void
    {
        $calls = [];
        $handler = function (array $event, Step $step) use (&$calls) {
            foreach (['a', 'b', 'c'] as $id) {
                try {
                    $step->run($id, function () use ($id, &$calls) {
                        $calls[] = $id;
                        return $id;
                    });
                } catch (\Throwable $e) { // user code that catches everything, the bound's stop included
                }
            }
            try {
                $step->sleep('nap', '1s');
            } catch (\Throwable $e) {
            }
            return 'done anyway';
        };
        $this->assertSame(['op' => 'checkpoint', 'steps' => [['id' => 'a', 'data' => 'a'], ['id' => 'b', 'data' => 'b']], 'then' => null], self::op(self::define($handler, ['maxSteps' => 2])));
        $this->assertSame(['a', 'b'], $calls, 'no step executes after the bound stopped the replay');
        $op = self::op(self::define($handler));
        $this->assertSame(['op' => 'sleep', 'id' => 'nap', 'until' => '2026-01-01T00:00:01.123Z'], $op['then'], 'the first stop is answered');
    }

    public function testTheFailureHandlerTakesTheFunctionsSetting(): void
    {
        $handler = fn () => null;
        $this->assertNull(self::define($handler, false, onFailure: $handler)->failureHandler?->checkpoint);
        $this->assertSame(['maxSteps' => 5, 'maxBytes' => 1048576, 'maxMs' => 1000], self::define($handler, ['maxSteps' => 5], onFailure: $handler)->failureHandler?->checkpoint);
    }

    public function testTheOptionIsValidatedAndNeverSynced(): void
    {
        $definition = self::define(fn () => null)->definition;
        foreach ([false, [], ['maxSteps' => 1000, 'maxBytes' => 4 * 1024 * 1024, 'maxMs' => 1]] as $setting) {
            $this->assertSame($definition, self::define(fn () => null, $setting)->definition);
        }
        $this->assertArrayNotHasKey('checkpoint', $definition);
        $bad = [
            [['maxSteps' => 0], 'checkpoint.maxSteps: must be an integer 1..1000, got 0'],
            [['maxSteps' => 1001], 'checkpoint.maxSteps: must be an integer 1..1000, got 1001'],
            [['maxBytes' => '1'], "checkpoint.maxBytes: must be an integer 1..4194304, got '1'"],
            [['maxMs' => 1.5], 'checkpoint.maxMs: must be an integer 1..31536000000, got 1.5'],
            [['maxMs' => null], 'checkpoint.maxMs: must be an integer 1..31536000000, got NULL'],
            [['max_steps' => 5], 'checkpoint.max_steps: unknown option (expected maxSteps, maxBytes, maxMs)'],
            [[5], 'checkpoint.0: unknown option (expected maxSteps, maxBytes, maxMs)'],
        ];
        foreach ($bad as [$setting, $message]) {
            try {
                self::define(fn () => null, $setting);
                $this->fail('accepted checkpoint: ' . var_export($setting, true));
            } catch (\InvalidArgumentException $e) {
                $this->assertSame("function 'f': $message", $e->getMessage());
            }
        }
    }

    /**
     * Arbitrary JSON results through a checkpoint, with random bounds: the answer carries each result
     * exactly as encoded, stops where the bounds say, and the handler saw each result's round trip, the
     * same value a replay of the stored steps gives it.
     */
    public function testArbitraryJsonResultsAreCarriedExactlyAndSeenAsReplayed(): void
    {
        mt_srand(20260101);
        for ($iteration = 0; $iteration < 300; $iteration++) {
            $results = array_map(fn () => self::randomJson(4), range(1, mt_rand(1, 6)));
            $bounds = ['maxSteps' => mt_rand(1, 7), 'maxBytes' => mt_rand(1, 400)];
            $seen = [];
            $handler = function (array $event, Step $step) use ($results, &$seen) {
                foreach ($results as $i => $result) {
                    $seen[] = $step->run("r$i", fn () => $result);
                }
                return count($seen);
            };
            $function = self::define($handler, $bounds);
            $body = self::answer($function);
            $why = "iteration $iteration: " . $body;

            [$expectCount, $bytes, $bound] = [count($results), 0, false]; // where the bounds stop the checkpoint
            foreach ($results as $i => $result) {
                $bytes += strlen(Json::encode($result));
                if ($i + 1 >= $bounds['maxSteps'] || $bytes >= $bounds['maxBytes']) {
                    [$expectCount, $bound] = [$i + 1, true];
                    break;
                }
            }
            $answer = json_decode($body, false, 512, JSON_THROW_ON_ERROR);
            $carried = $answer->op === 'step' ? [$answer] : $answer->steps;
            $this->assertCount($expectCount, $carried, $why);
            if ($bound) { // checked after each step, the last one included
                $this->assertSame($expectCount === 1 ? 'step' : 'checkpoint', $answer->op, $why);
                $this->assertTrue($answer->op === 'step' || $answer->then === null, $why);
            } else {
                $this->assertSame('checkpoint', $answer->op, $why);
                $this->assertEquals((object) ['op' => 'done', 'data' => count($results)], $answer->then, $why);
            }
            foreach ($carried as $i => $item) {
                $this->assertSame("r$i", $item->id, $why);
                $this->assertSame(self::normal(Json::encode($results[$i])), self::normal(Json::encode($item->data)), $why);
            }
            // The handler stops right after the step that reached a bound: it sees the results before it.
            $this->assertCount($bound ? $expectCount - 1 : $expectCount, $seen, "$why: no step runs after the bound");
            foreach ($seen as $i => $value) {
                $this->assertSame(json_decode(Json::encode($results[$i]), true), $value, $why);
            }

            $stored = [];
            foreach ($carried as $item) {
                $stored[$item->id] = ['type' => 'run', 'data' => $item->data];
            }
            $first = $seen;
            $seen = [];
            self::op($function, $stored);
            $this->assertSame($first, array_slice($seen, 0, count($first)), "$why: a replay gives the handler the same values");
            $this->assertSame(array_map(fn ($result) => json_decode(Json::encode($result), true), array_slice($results, 0, $expectCount)), array_slice($seen, 0, $expectCount), $why);
        }
    }

    /** $json re-encoded from objects and lists as decoded: equal texts are equal JSON values ({} ≠ [], 1 ≠ "1"). */
    private static function normal(string $json): string
    {
        return Json::encode(json_decode($json, false, 512, JSON_THROW_ON_ERROR), JSON_PRESERVE_ZERO_FRACTION);
    }

    /** A random JSON value as PHP builds one: scalars, unicode strings, lists, arrays with string keys, objects. */
    private static function randomJson(int $depth): mixed
    {
        $kind = mt_rand(0, $depth > 0 ? 9 : 5);
        return match ($kind) {
            0 => null,
            1 => mt_rand(0, 1) === 1,
            2 => mt_rand(PHP_INT_MIN, PHP_INT_MAX) >> mt_rand(0, 63),
            3 => [1.5, -0.25, 3.0, 1e25, -7.0e-10, 0.1 + 0.2, mt_rand() / mt_getrandmax() * 1e6][mt_rand(0, 6)],
            4, 5 => self::randomString(),
            6 => array_map(fn () => self::randomJson($depth - 1), range(0, mt_rand(0, 3))),
            7 => (object) self::randomMap($depth),
            8 => self::randomMap($depth) ?: new \stdClass(),
            default => [],
        };
    }

    /** @return array<string, mixed> */
    private static function randomMap(int $depth): array
    {
        $map = [];
        for ($i = mt_rand(0, 3); $i > 0; $i--) {
            $map[self::randomString()] = self::randomJson($depth - 1);
        }
        return $map;
    }

    /** Up to 8 characters of ASCII, quotes and escapes, controls, accents, CJK, emoji, or digits (integer-like keys). */
    private static function randomString(): string
    {
        $pool = ['a', 'Z', ' ', '"', '\\', '/', "\n", "\t", "\u{0001}", 'é', 'ß', '☃', '中', '😀', "\u{200B}", '0', '7', '-'];
        $text = '';
        for ($i = mt_rand(0, 8); $i > 0; $i--) {
            $text .= $pool[mt_rand(0, count($pool) - 1)];
        }
        return $text;
    }
}
