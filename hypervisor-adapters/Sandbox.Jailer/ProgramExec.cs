using System.Runtime.InteropServices;
using System.Text;
using Sandbox.Native;

namespace Sandbox.Jailer;

/// <summary>execve with this process's environment. Returns only by throwing.</summary>
internal static unsafe class ProgramExec
{
    public static void Exec(string program, IReadOnlyList<string> arguments)
    {
        var argv = new List<string> { program };
        argv.AddRange(arguments);
        var environment = Environment.GetEnvironmentVariables();
        var envp = new List<string>();
        foreach (System.Collections.DictionaryEntry entry in environment)
            envp.Add($"{entry.Key}={entry.Value}");
        byte** argvNative = ToNative(argv);
        byte** envpNative = ToNative(envp);
        LibCSupplement.execve(argvNative[0], argvNative, envpNative);
        throw new JailException($"cannot execute {program} in the jail: {Errno.DescribeLast()} (is it, with its libraries, inside the jail?)");
    }

    private static byte** ToNative(List<string> values)
    {
        var array = (byte**)NativeMemory.Alloc((nuint)(values.Count + 1), (nuint)sizeof(byte*));
        for (int i = 0; i < values.Count; i++)
        {
            var bytes = LibCStrings.CString(values[i])!;
            var native = (byte*)NativeMemory.Alloc((nuint)bytes.Length);
            bytes.CopyTo(new Span<byte>(native, bytes.Length));
            array[i] = native;
        }
        array[values.Count] = null;
        return array;
    }
}
