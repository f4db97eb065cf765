using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Shim.Tests;

/// <summary>The steps the ctr end-to-end tests share: a ctr call that must succeed, failure text with containerd's log
/// (which carries the shim's lines), and polling for a condition.</summary>
internal static class CtrSteps
{
    public static string Describe(this PrivateContainerd containerd, CommandResult result) =>
        $"{result}\n--- containerd log (tail) ---\n{LogTail(containerd, 60)}";

    public static string LogTail(this PrivateContainerd containerd, int lines) =>
        string.Join('\n', containerd.Log.Split('\n').TakeLast(lines));

    public static async Task<CommandResult> CtrOkAsync(this PrivateContainerd containerd, params string[] arguments)
    {
        var result = await containerd.CtrAsync(arguments);
        Assert.True(result.ExitCode == 0, containerd.Describe(result));
        return result;
    }

    /// <summary>
    /// `ctr run --rm` of `seq 1 20000` (108894 bytes) whose output the test starts reading only after the container
    /// marked, in its rootfs, that seq finished, and half a second more: the process exits meanwhile, while ctr's
    /// copy is blocked on its full stdout pipe and the rest waits in the FIFO. containerd 1.6.20's ctr closes its FIFO
    /// reader as soon as it deletes the task, which it does when Wait returns; the shim must hold the exit until the
    /// reader took everything (containerd's runc shim does not: ctr then prints 69632 bytes).
    /// </summary>
    public static async Task<CommandResult> RunWithLateReaderAsync(this PrivateContainerd containerd, string runtime, string image,
        string id, TimeSpan timeout)
    {
        string marker = Path.Combine(containerd.TaskBundle(id), "rootfs", "seq-done");
        return await containerd.CtrAsync(
            new[] { "run", "--fifo-dir", containerd.FifoDirectory, "--rm", "--runtime", runtime, image, id, "sh", "-c", "seq 1 20000; touch /seq-done" },
            timeout,
            beforeReadingStdout: async () =>
            {
                // bounded: if the marker never shows, read anyway (the output check then reports what arrived)
                for (int i = 0; i < 1200 && !File.Exists(marker); i++)
                    await Task.Delay(50);
                await Task.Delay(500);
            });
    }

    /// <summary>
    /// `ctr run --rm --log-uri binary:///…` of a command that writes "to-stdout", "to-stderr" and exits 2, with a
    /// logging binary (a shell script in the instance's directory) that copies fd 3 and fd 4 into files and records the
    /// CONTAINER_ID and CONTAINER_NAMESPACE it was given. Returns ctr's result and what the binary wrote.
    /// </summary>
    public static async Task<LoggedRun> RunWithLoggingBinaryAsync(this PrivateContainerd containerd, string runtime, string image,
        string id, TimeSpan timeout)
    {
        string logger = Path.Combine(containerd.Directory, "logger.sh");
        if (!File.Exists(logger))
        {
            // each reader closes the fds it does not read, and fd 5 (the ready signal) is closed once both run
            await File.WriteAllTextAsync(logger, """
                #!/bin/sh
                out=$2
                cat <&3 4<&- 5>&- > "$out.stdout" &
                cat <&4 3<&- 5>&- > "$out.stderr" &
                exec 3<&- 4<&- 5>&-
                wait
                printf '%s %s\n' "$CONTAINER_ID" "$CONTAINER_NAMESPACE" > "$out.ids"
                """);
            File.SetUnixFileMode(logger, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        string output = Path.Combine(containerd.Directory, "logged-" + id);
        var result = await containerd.CtrAsync(
            new[] { "run", "--rm", "--log-uri", $"binary://{logger}?file={output}", "--runtime", runtime, image, id,
                    "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 2" },
            timeout);
        // the binary exits once both pipes reach end of file; the shim reports the exit only after that
        for (int i = 0; i < 100 && !File.Exists(output + ".ids"); i++)
            await Task.Delay(100);
        string Read(string suffix) => File.Exists(output + suffix) ? File.ReadAllText(output + suffix) : $"(no {suffix} file)";
        return new LoggedRun(result, Read(".stdout"), Read(".stderr"), Read(".ids").Trim());
    }

    public static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        for (int i = 0; i < 300; i++)
        {
            if (await condition())
                return;
            await Task.Delay(100);
        }
        Assert.Fail("the condition did not become true within 30 s");
    }
}

/// <summary>A `ctr run` whose output went to a logging binary: ctr's result and the files the binary wrote.</summary>
internal sealed record LoggedRun(CommandResult Ctr, string Stdout, string Stderr, string Ids);
